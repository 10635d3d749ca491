"""Reading a trait vector with a sparse autoencoder (sae-lens).

The full profile can name a pretrained sae-lens SAE for its model and layer (``profile.extra``
keys ``sae_release`` and ``sae_id``). Otherwise a small SAE is trained here on the model's own
activations over the course's text and wrapped as a sae-lens `StandardSAE`, so the reading code is
the same either way.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from jaxtyping import Float
from sae_lens import SAE, StandardSAE, StandardSAEConfig
from torch import Tensor
from tqdm.auto import trange

from utils.activations import mean_over_spans
from utils.chat import encode


def token_activations(model, tokenizer, texts: list[str], layer: int, batch_size: int = 16) -> Float[Tensor, "n d"]:
    """Every token's output of block ``layer`` over plain texts (one row per token)."""
    rows = []
    for text in texts:
        n = len(encode(text, tokenizer)["input_ids"])
        rows.append([(i, i + 1) for i in range(n)])
    per_text = mean_over_spans(model, tokenizer, texts, rows, [layer], batch_size, desc="SAE activations")
    return torch.cat([acts[0] for acts in per_text])


def train_sae(acts: Float[Tensor, "n d"], d_sae: int, steps: int = 400, l1: float = 3e-3, seed: int = 0) -> StandardSAE:
    """Train a small ReLU SAE (L2 reconstruction + L1 on latents weighted by decoder norms)."""
    torch.manual_seed(seed)
    d_in = acts.shape[1]
    scale = acts.norm(dim=-1).mean() / d_in**0.5
    x_all = acts / scale
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae))
    with torch.no_grad():
        sae.W_dec.copy_(torch.randn(d_sae, d_in) / d_in**0.5)
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_dec.copy_(x_all.mean(0))
    opt = torch.optim.Adam(sae.parameters(), lr=2e-3)
    with torch.enable_grad():
        for _ in trange(steps, desc="training SAE", leave=False):
            x = x_all[torch.randint(len(x_all), (min(512, len(x_all)),))]
            latents = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
            recon = latents @ sae.W_dec + sae.b_dec
            loss = (recon - x).pow(2).sum(-1).mean() + l1 * (latents * sae.W_dec.norm(dim=-1)).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    sae.eval()
    return sae


def load_or_train_sae(model, tokenizer, layer: int, texts: list[str], profile, path: Path) -> SAE:
    """A pretrained SAE when the profile names one, else a small SAE trained (and cached) here."""
    if profile.extra.get("sae_release"):
        return SAE.from_pretrained(profile.extra["sae_release"], profile.extra["sae_id"])
    d_in = model.config.hidden_size
    if path.exists():
        sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=4 * d_in))
        sae.load_state_dict(torch.load(path, map_location="cpu"))
        return sae.eval()
    acts = token_activations(model, tokenizer, texts, layer)
    sae = train_sae(acts, d_sae=4 * d_in)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sae.state_dict(), path)
    return sae


def top_latents_by_cosine(sae: SAE, vector: Float[Tensor, " d"], k: int = 10) -> pd.DataFrame:
    """The SAE latents whose decoder directions are most aligned (either sign) with ``vector``."""
    W_dec = sae.W_dec.detach().float()
    cos = torch.nn.functional.cosine_similarity(W_dec, vector.float()[None], dim=-1)
    order = cos.abs().topk(min(k, len(cos))).indices
    return pd.DataFrame({"latent": order.tolist(), "cosine": cos[order].tolist()})
