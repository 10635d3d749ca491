"""A stand-in for a published SAE, placed where sae-lens's own loader finds it without a network.

`place_published_sae` writes a small random SAE in the format the release's sae-lens converter reads
(for ``qwen2.5-7b-instruct-andyrdt``: dictionary_learning's ``config.json`` + ``ae.pt`` of a
``BatchTopKSAE``) into a Hugging Face hub cache folder laid out as ``hf download`` leaves it
(``models--owner--name/refs/main`` naming a snapshot). With ``HF_HUB_CACHE`` pointing there and
``HF_HUB_OFFLINE=1``, ``SAE.from_pretrained(release, sae_id)`` (the call the full profile makes for
the real release) loads it from the cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"  # any commit hash: refs/main names it


def place_published_sae(
    cache_dir: Path, release: str, sae_id: str, d_in: int, d_sae: int, k: int = 8, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Write a random SAE of width ``d_in`` for ``release``/``sae_id`` into the hub cache ``cache_dir``.

    Returns:
        The tensors written (dictionary_learning names: ``encoder.weight`` [d_sae, d_in], ``decoder.weight``
        [d_in, d_sae], ``b_dec``, ...), to compare with what sae-lens loads.
    """
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory, get_repo_id_and_folder_name

    lookup = get_pretrained_saes_directory()[release]
    if lookup.conversion_func != "dictionary_learning_1":  # the only format written here
        raise NotImplementedError(f"{release} is read by sae-lens's {lookup.conversion_func!r} converter")
    repo_id, folder = get_repo_id_and_folder_name(release, sae_id)
    repo_dir = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    target = repo_dir / "snapshots" / SNAPSHOT / folder
    target.mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(SNAPSHOT)
    layer = int(folder.split("/")[0].rsplit("_", 1)[-1])  # resid_post_layer_19/trainer_1 -> 19
    config = {
        "trainer": {
            "trainer_class": "BatchTopKTrainer",
            "dict_class": "BatchTopKSAE",
            "activation_dim": d_in,
            "dict_size": d_sae,
            "k": k,
            "layer": layer,
            "lm_name": lookup.model,
        },
        "buffer": {"d_submodule": d_in, "ctx_len": 1024},
    }
    (target / "config.json").write_text(json.dumps(config, indent=1))
    generator = torch.Generator().manual_seed(seed)
    decoder = torch.randn(d_in, d_sae, generator=generator)
    decoder /= decoder.norm(dim=0, keepdim=True)
    weights = {
        "encoder.weight": decoder.T.clone(),
        "encoder.bias": torch.zeros(d_sae),
        "decoder.weight": decoder,
        "b_dec": torch.zeros(d_in),
        "threshold": torch.tensor(0.1),
        "k": torch.tensor(k),
    }
    torch.save(weights, target / "ae.pt")
    return weights
