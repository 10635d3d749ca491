"""Section 2: the hand-written replies that test the drift judge (`probe_conversations`)."""

from __future__ import annotations

import json

import pytest

from part2_capping.conversations import PROBE_FILE, load_transcripts, probe_conversations
from utils.data import DataError


def test_every_drift_transcript_has_a_drifted_and_a_grounded_reply():
    replies = json.loads(PROBE_FILE.read_text(encoding="utf-8"))
    drift = [t["name"] for t in load_transcripts() if t["category"] == "drift"]
    assert drift
    for name in drift:
        pair = replies[name]
        assert pair["drifted"].strip() and pair["grounded"].strip() and pair["drifted"] != pair["grounded"]


def test_probes_put_the_reply_at_every_turn_of_drift_transcripts_only():
    transcripts = load_transcripts()
    probes = probe_conversations(transcripts, n_turns=3)
    assert [p["name"] for p in probes] == [t["name"] for t in transcripts if t["category"] == "drift"]
    replies = json.loads(PROBE_FILE.read_text(encoding="utf-8"))
    by_name = {t["name"]: t for t in transcripts}
    for probe in probes:
        transcript = by_name[probe["name"]]
        for kind in ("drifted", "grounded"):
            turns = [m for m in probe[kind] if m["role"] != "system"]
            assert [m["content"] for m in turns[::2]] == transcript["user_turns"][:3]
            assert [m["content"] for m in turns[1::2]] == [replies[probe["name"]][kind]] * 3
            assert [m["role"] for m in turns] == ["user", "assistant"] * 3
            if transcript.get("system_prompt"):
                assert probe[kind][0] == {"role": "system", "content": transcript["system_prompt"]}


def test_probe_without_a_grounded_reply_is_reported(tmp_path):
    transcripts = [t for t in load_transcripts() if t["category"] == "drift"][:1]
    path = tmp_path / "probes.json"
    path.write_text(json.dumps({transcripts[0]["name"]: {"drifted": "I am a ghost now."}}))
    with pytest.raises(DataError, match="grounded"):
        probe_conversations(transcripts, path=path)


def test_transcripts_without_probe_replies_are_skipped(tmp_path):
    path = tmp_path / "probes.json"
    path.write_text("{}")
    assert probe_conversations(load_transcripts(), path=path) == []
