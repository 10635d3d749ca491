"""Section 2: persona drift, steering along the Assistant Axis, and activation capping."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
TRANSCRIPT_DIR = DATA_DIR / "transcripts"

# Section 2's judge prompts (its other formulations of the drift judge: `part2_capping.judge_check`).
DRIFT_PROMPT_FILE = DATA_DIR / "drift_prompt.txt"
"""The drift judge (0-10): has a reply drifted from a grounded AI assistant, given the conversation so far."""
CAPPED_REPLY_COHERENCE_PROMPT_FILE = DATA_DIR / "capped_reply_coherence_prompt.txt"
"""Whether a reply to an ordinary question stays coherent under activation capping (0-100, correctness and
politeness ignored). Not section 3's rubric (`part3_contrastive.COHERENCE_PROMPT_FILE`), which follows the
persona-vectors paper for trait responses."""
