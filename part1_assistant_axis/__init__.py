"""Section 1: mapping persona space and finding the Assistant Axis."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
ROLES_DIR = DATA_DIR / "roles" / "instructions"
QUESTIONS_FILE = DATA_DIR / "extraction_questions.jsonl"
DEFAULT_ROLE = "default"
"""The role file holding the model's own, default persona (its prompts include the empty one)."""
