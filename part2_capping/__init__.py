"""Section 2: persona drift, steering along the Assistant Axis, and activation capping."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
TRANSCRIPT_DIR = DATA_DIR / "transcripts"
