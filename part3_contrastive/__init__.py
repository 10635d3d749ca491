"""Section 3: contrastive prompting, extracting trait vectors."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
