"""Section 2's conversations: transcripts of user turns, replaying them so the model writes every assistant
turn, and the everyday requests that calibrate the capping floor.

A transcript file holds only the user's side of a conversation (keys ``name``, ``category`` —
``drift`` or ``control`` —, ``description``, ``system_prompt``, ``conversation``). Replaying sends the
user turns one at a time and lets the model answer each, batched across conversations.
"""

from __future__ import annotations

import json
from pathlib import Path

from part2_capping import DATA_DIR, TRANSCRIPT_DIR
from utils.chat import Message
from utils.data import DataError, load_questions, load_transcript
from utils.generation import generate_replies
from utils.progress import tqdm

# Teaching order: a drift and a control conversation alternate, so any prefix has both kinds.
TRANSCRIPT_ORDER = (
    "ai_nature",
    "python_debugging",
    "growing_delusion",
    "trip_planning",
    "emotional_dependence",
    "essay_editing",
    "sustained_roleplay",
    "therapy_spiral",
)


def calibration_questions(n: int | None = None) -> list[str]:
    """Ordinary requests (code, cooking, advice, explanations): the default assistant at everyday work."""
    return load_questions(DATA_DIR / "calibration_questions.jsonl")[:n]


def load_transcripts(n: int | None = None, folder: str | Path = TRANSCRIPT_DIR) -> list[dict]:
    """Load the transcripts, drift and control alternating (files not in `TRANSCRIPT_ORDER` last).

    Args:
        n: how many to keep (None: all).
        folder: the transcripts folder (default: this section's data).

    Returns:
        Transcript dicts (see `utils.data.load_transcript`), each with ``user_turns``: the user messages.
    """
    paths = {p.stem: p for p in sorted(Path(folder).glob("*.json"))}
    if not paths:
        raise DataError(f"{folder}: no transcript files (*.json) in this folder")
    names = [name for name in TRANSCRIPT_ORDER if name in paths] + sorted(set(paths) - set(TRANSCRIPT_ORDER))
    transcripts = []
    for name in names[:n]:
        data = load_transcript(paths[name])
        data["user_turns"] = [t["content"] for t in data["conversation"] if t["role"] == "user"]
        transcripts.append(data)
    return transcripts


def opening(transcript: dict) -> list[Message]:
    """The messages before the first user turn: the system prompt, if the transcript has one."""
    system = transcript.get("system_prompt", "")
    return [{"role": "system", "content": system}] if system else []


def replay_conversations(
    model,
    tokenizer,
    transcripts: list[dict],
    n_turns: int | None = None,
    max_new_tokens: int = 128,
    batch_size: int = 16,
    temperature: float = 0.0,
    desc: str = "replaying",
) -> list[list[Message]]:
    """Send each transcript's user turns one by one and let the model write every reply.

    All conversations advance together: at turn ``t`` every conversation gets its ``t``-th user
    message, and one batched `generate_replies` call writes all the replies. Any hooks registered on
    the model (steering, capping) are active for every reply.

    Args:
        model, tokenizer: the model.
        transcripts: from `load_transcripts`.
        n_turns: user turns to replay (None: all; fewer if a transcript is shorter).
        max_new_tokens: reply length.
        batch_size: generation batch size.
        temperature: 0 for greedy replies (reproducible, and capped vs uncapped differ only by the cap).
        desc: progress-bar label.

    Returns:
        One message list per transcript: optional system message, then user/assistant pairs.
    """
    conversations = [opening(t) for t in transcripts]
    turns = max(len(t["user_turns"][:n_turns]) for t in transcripts)
    for turn in tqdm(range(turns), desc=desc):
        active = [i for i, t in enumerate(transcripts) if turn < len(t["user_turns"][:n_turns])]
        for i in active:
            conversations[i].append({"role": "user", "content": transcripts[i]["user_turns"][turn]})
        replies = generate_replies(
            model,
            tokenizer,
            [conversations[i] for i in active],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            batch_size=batch_size,
            desc=f"turn {turn + 1}",
        )
        for i, reply in zip(active, replies):
            conversations[i].append({"role": "assistant", "content": reply.strip()})
    return conversations


def format_exchanges(messages: list[Message], max_chars: int = 200) -> str:
    """Render messages as ``User: ...`` / ``Assistant: ...`` lines for a judge prompt.

    Args:
        messages: user and assistant messages (system messages are skipped).
        max_chars: longer messages are cut to this many characters, with an ellipsis.

    Returns:
        The lines, or ``(start of the conversation)`` when there is nothing to show.
    """
    lines = []
    for m in messages:
        if m["role"] == "system":
            continue
        text = m["content"].strip()
        if len(text) > max_chars:
            text = text[:max_chars].rstrip() + " ..."
        lines.append(f"{'User' if m['role'] == 'user' else 'Assistant'}: {text}")
    return "\n".join(lines) if lines else "(start of the conversation)"


PROBE_FILE = DATA_DIR / "drift_probe_replies.json"


def probe_conversations(
    transcripts: list[dict], n_turns: int | None = None, path: str | Path = PROBE_FILE
) -> list[dict]:
    """Conversations with hand-written replies, to test a drift judge on text whose drift we know.

    For each drift transcript that has a pair of replies in ``path`` (name -> ``drifted`` and
    ``grounded``), two conversations with the transcript's first ``n_turns`` user turns: in one every
    assistant turn is the drifted reply, in the other every assistant turn is the grounded one.

    Args:
        transcripts: from `load_transcripts`.
        n_turns: user turns per conversation (None: all), as in the replay.
        path: the probe replies file.

    Returns:
        One dict per probed transcript: ``name``, ``drifted`` and ``grounded`` (message lists).
    """
    replies = json.loads(Path(path).read_text(encoding="utf-8"))
    probes = []
    for t in transcripts:
        pair = replies.get(t["name"])
        if t["category"] != "drift" or not isinstance(pair, dict):
            continue
        if not {"drifted", "grounded"} <= set(pair):
            raise DataError(f"{path}: {t['name']!r} needs both a 'drifted' and a 'grounded' reply")
        probe = {"name": t["name"]}
        for kind in ("drifted", "grounded"):
            messages = opening(t)
            for user in t["user_turns"][:n_turns]:
                messages += [{"role": "user", "content": user}, {"role": "assistant", "content": pair[kind]}]
            probe[kind] = messages
        probes.append(probe)
    return probes
