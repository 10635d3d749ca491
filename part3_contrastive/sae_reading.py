"""Reading a trait vector with a sparse autoencoder (sae-lens), made readable with text snippets.

Where sae-lens lists a published SAE for the section's model and block (`PUBLISHED`; or
the profile's ``sae_release`` and ``sae_id``), it is loaded. Otherwise a small SAE is
trained here on the model's own activations over the section's text and wrapped as a sae-lens
`StandardSAE`, so the reading code is the same either way. When a published SAE is listed but can
be neither downloaded nor found in the local Hugging Face cache (no network), `load_published_sae`
prints why (release, block, how to fetch it) and the section falls back to the SAE trained here,
announced as such. Either way its size and its
reconstruction quality on the section's text (fraction of variance explained, on tokens held out of
training when it is trained here) are reported, and each latent is read through the snippets of the
section's own responses that activate it most.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from jaxtyping import Float
from sae_lens import SAE, StandardSAE, StandardSAEConfig
from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name
from torch import Tensor

from utils.activations import mean_over_spans
from utils.cache import load_or_generate
from utils.chat import encode
from utils.departures import departure
from utils.profiles import Profile
from utils.progress import tqdm

# Published SAEs that sae-lens lists for the course's models: model -> (release, sae_id pattern, blocks).
# The andyrdt release holds BatchTopK SAEs on the residual stream after blocks 3, 7, ..., 27 of
# Qwen2.5-7B-Instruct; the full profile's STEER_LAYER (block 19) is one of them.
PUBLISHED = {
    "Qwen/Qwen2.5-7B-Instruct": (
        "qwen2.5-7b-instruct-andyrdt",
        "resid_post_layer_{layer}_trainer_1",
        (3, 7, 11, 15, 19, 23, 27),
    ),
}
HELD_OUT_FRACTION = 0.1


def published_sae(model_name: str | None, layer: int, profile: Profile | None = None) -> tuple[str, str] | None:
    """(release, sae_id) of a published SAE on this model's block ``layer``, or None."""
    release, sae_id = getattr(profile, "sae_release", None), getattr(profile, "sae_id", None)
    if release and sae_id:
        return release, sae_id
    if model_name in PUBLISHED:
        release, pattern, layers = PUBLISHED[model_name]
        if layer in layers:
            return release, pattern.format(layer=layer)
    return None


def fetch_command(release: str, sae_id: str) -> str:
    """The command that downloads one SAE of a sae-lens release into the local Hugging Face cache."""
    repo_id, folder = get_repo_id_and_folder_name(release, sae_id)
    return f"hf download {repo_id} --include '{folder}/*'"


def unavailable_message(release: str, sae_id: str, layer: int, err: Exception) -> str:
    """What a student reads when a listed published SAE cannot be loaded: which, why, how to fetch it, the fallback."""
    repo_id, folder = get_repo_id_and_folder_name(release, sae_id)
    reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return (
        departure(f"the published SAE for block {layer} is not available: sae-lens release ")
        + f"{release!r}, id {sae_id!r} (Hugging Face repo {repo_id}, folder {folder}) is not in the local Hugging "
        f"Face cache and could not be downloaded ({type(err).__name__}: {reason}).\n"
        f"To use it, fetch it once on a machine with network, into the Hugging Face cache this kernel reads "
        f"(HF_HOME / HF_HUB_CACHE):\n    {fetch_command(release, sae_id)}\nthen re-run this cell.\n"
        f"FALLBACK: this run trains a small SAE here, on the model's own activations over the section's text, "
        f"and reads the vector with it (announced below as 'trained here'): a rougher lens than the published SAE."
    )


def load_published_sae(release: str, sae_id: str, layer: int) -> SAE | None:
    """A published SAE through sae-lens (``SAE.from_pretrained``: the local Hugging Face cache, else the hub).

    Returns:
        The SAE, or None after printing `unavailable_message` when neither the hub nor the local cache has
        it (no network, ``HF_HUB_OFFLINE``, or the hub refusing the download).
    """
    try:
        loaded = SAE.from_pretrained(release, sae_id)
    except (LocalEntryNotFoundError, HfHubHTTPError) as err:
        print(unavailable_message(release, sae_id, layer, err))
        return None
    return loaded[0] if isinstance(loaded, tuple) else loaded


def corpus_tokens(tokenizer, texts: list[str]) -> list[tuple[int, int]]:
    """(text index, token index) of every token of ``texts``: the row order of `token_activations`."""
    return [(t, i) for t, text in enumerate(texts) for i in range(len(encode(text, tokenizer)["input_ids"]))]


def token_activations(model, tokenizer, texts: list[str], layer: int, batch_size: int = 16) -> Float[Tensor, "n d"]:
    """Every token's output of block ``layer`` over plain texts (one row per token, in `corpus_tokens` order)."""
    rows = []
    for text in texts:
        n = len(encode(text, tokenizer)["input_ids"])
        rows.append([(i, i + 1) for i in range(n)])
    per_text = mean_over_spans(model, tokenizer, texts, rows, [layer], batch_size, desc="SAE activations")
    return torch.cat([acts[0] for acts in per_text])


def train_sae(acts: Float[Tensor, "n d"], d_sae: int, steps: int = 400, l1: float = 1.0, seed: int = 0) -> StandardSAE:
    """Train a small ReLU SAE (L2 reconstruction + L1 on latents weighted by decoder norms).

    ``l1 = 1.0`` (on activations scaled to norm sqrt(d)) gave about 88 active latents of 3584 per token and
    FVE 0.996 on held-out tokens of section 3's offline text; 3e-3 gave an autoencoder that was not sparse (L0 ~1200).

    Trained on activations divided by one scale (mean norm / sqrt(d)); the scale is folded back into the
    weights afterwards, so the returned SAE encodes and decodes raw activations.
    """
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
        for _ in tqdm(range(steps), desc="training SAE"):
            x = x_all[torch.randint(len(x_all), (min(512, len(x_all)),))]
            latents = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
            recon = latents @ sae.W_dec + sae.b_dec
            loss = (recon - x).pow(2).sum(-1).mean() + l1 * (latents * sae.W_dec.norm(dim=-1)).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():  # fold the scale in: encode(x) = relu((x/scale - b_dec) W_enc + b_enc)
        sae.W_enc.div_(scale)
        sae.W_dec.mul_(scale)
        sae.b_dec.mul_(scale)
    sae.eval()
    return sae


def reconstruction_quality(sae: SAE, acts: Float[Tensor, "n d"]) -> dict:
    """Fraction of variance explained and mean number of active latents (L0) on ``acts``."""
    with torch.no_grad():
        x = acts.to(sae.W_dec.device, sae.W_dec.dtype)
        latents = sae.encode(x)
        recon = sae.decode(latents)
        fve = 1 - (recon - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    return {"fve": float(fve), "l0": float((latents > 0).float().sum(-1).mean())}


def load_or_train_sae(
    layer: int,
    acts: Float[Tensor, "n d"],
    profile: Profile,
    path: Path,
    model_name: str | None = None,
    inputs: dict | None = None,
):
    """A published SAE for this model and block if sae-lens lists one (and it can be loaded), else a small
    SAE trained (and cached) here.

    A listed SAE that is neither in the local Hugging Face cache nor reachable on the hub is reported
    (`unavailable_message`: release, block, how to fetch it) and replaced by the trained one; ``source``
    then says so.

    Args:
        layer: the block whose output the SAE reads.
        acts: token activations of that block over the section's text (`token_activations`).
        profile: the active profile (its ``sae_release``/``sae_id`` may name a published SAE).
        path: where a trained SAE is cached (`utils.cache.load_or_generate`).
        model_name: the section's model, to look up `PUBLISHED`.
        inputs: what the trained SAE depends on (the cache key), e.g. ``course.inputs(data=...)``.

    Returns:
        (sae, info): info has source, d_in, d_sae, tokens, fve (fraction of variance explained) and l0.
    """
    found = published_sae(model_name, layer, profile)
    published = load_published_sae(*found, layer) if found is not None else None
    if published is not None and found is not None:
        sae = published
        info = {"source": f"sae-lens release {found[0]!r}, id {found[1]!r}", "tokens": len(acts)}
        info.update(reconstruction_quality(sae, acts))
    else:
        perm = torch.randperm(len(acts), generator=torch.Generator().manual_seed(0))
        n_test = max(1, int(len(acts) * HELD_OUT_FRACTION))
        test, train = acts[perm[:n_test]], acts[perm[n_test:]]
        d_in = acts.shape[1]
        state = load_or_generate(
            path, lambda: dict(train_sae(train, d_sae=4 * d_in).state_dict()), "small SAE", inputs=inputs
        )
        sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=4 * d_in))
        sae.load_state_dict(state)
        sae.eval()
        source = f"a small SAE trained here on {len(train)} tokens of the section's text"
        if found is not None:
            source += f" (fallback: the published SAE {found[0]!r}, id {found[1]!r}, was not available)"
        info = {"source": source, "tokens": n_test}
        info.update(reconstruction_quality(sae, test))
    info.update(d_in=int(sae.W_dec.shape[1]), d_sae=int(sae.W_dec.shape[0]))
    return sae, info


def top_latents_by_cosine(sae: SAE, vector: Float[Tensor, " d"], k: int = 10) -> pd.DataFrame:
    """The SAE latents whose decoder directions are most aligned (either sign) with ``vector``."""
    W_dec = sae.W_dec.detach().float()
    cos = torch.nn.functional.cosine_similarity(W_dec, vector.float().to(W_dec.device)[None], dim=-1)
    order = cos.abs().topk(min(k, len(cos))).indices
    return pd.DataFrame({"latent": order.tolist(), "cosine": cos[order].tolist()})


def top_snippets(
    sae: SAE,
    acts: Float[Tensor, "n d"],
    tokenizer,
    texts: list[str],
    latents: list[int],
    k: int = 3,
    context: int = 8,
) -> pd.DataFrame:
    """For each latent, the ``k`` most activating tokens of ``texts`` with distinct snippets, shown in context.

    A corpus of model replies repeats itself ("I'm sorry, but I can't assist with that." many times), so the
    top tokens of a latent are often one snippet over and over. Each snippet is shown once, at its highest
    activation, and the next distinct one takes the freed place: fewer than ``k`` rows when fewer distinct
    snippets fire.

    Args:
        sae: the SAE.
        acts: `token_activations` of ``texts`` (one row per token, `corpus_tokens` order).
        tokenizer: to show the tokens.
        texts: the corpus.
        latents: latent ids to read.
        k: distinct snippets per latent (at most).
        context: tokens shown before the activating token (marked ``[[...]]``).

    Returns:
        One row per (latent, snippet): latent, activation, snippet (one row with activation 0 and snippet ""
        when the latent never fires).
    """
    index = corpus_tokens(tokenizer, texts)
    ids = [encode(text, tokenizer)["input_ids"] for text in texts]
    with torch.no_grad():
        codes = sae.encode(acts.to(sae.W_dec.device, sae.W_dec.dtype))[:, latents].float().cpu()  # [n, len(latents)]

    def snippet_at(row: int) -> str:
        t, i = index[row]
        before = tokenizer.decode(ids[t][max(0, i - context) : i])
        token = tokenizer.decode(ids[t][i : i + 1])
        after = tokenizer.decode(ids[t][i + 1 : i + 4])
        return f"{before}[[{token}]]{after}".replace("\n", " ")

    rows = []
    for j, latent in enumerate(latents):
        firing = int((codes[:, j] > 0).sum())
        if firing == 0:
            rows.append({"latent": latent, "activation": 0.0, "snippet": ""})
            continue
        seen: set[str] = set()
        values, where = codes[:, j].topk(firing)  # descending; stops as soon as k distinct snippets are found
        for value, row in zip(values.tolist(), where.tolist()):
            snippet = snippet_at(row)
            if snippet in seen:
                continue
            seen.add(snippet)
            rows.append({"latent": latent, "activation": value, "snippet": snippet})
            if len(seen) == k:
                break
    return pd.DataFrame(rows)
