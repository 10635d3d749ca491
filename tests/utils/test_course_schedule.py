"""The runner's side-by-side schedule: a section starts only after the sections it reads, the declared needs
match the sections' imports, relayed lines never mix, and kernels sharing a cache file lose nothing."""

from __future__ import annotations

import json
import multiprocessing
import re
import threading
import time
from pathlib import Path

import nbformat
import pytest

from utils import course, environment
from utils.judge import ADHERENCE_0_3, Judge
from utils.results import PROFILE_KEY
from utils.sections import NEEDS, ROOT, SECTIONS

P1, P2, P3, P4 = SECTIONS


def _ran_on_tiny(section: str, env: dict[str, str]) -> None:
    results = Path(env[environment.RESULTS_DIR])
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{section}.json").write_text(json.dumps({PROFILE_KEY: "tiny"}))


def test_a_section_waits_for_what_it_reads_and_for_nothing_else():
    everything = list(SECTIONS)
    assert course.can_start(P1, everything, set(), set())
    assert course.can_start(P3, everything, set(), {P1})  # 1 and 3 side by side
    assert not course.can_start(P2, everything, set(), {P3})  # 2 reads 1's axis
    assert course.can_start(P2, everything, {P1}, {P3})
    assert not course.can_start(P4, everything, {P1}, {P2})  # 4 reads 3's vectors too
    assert course.can_start(P4, everything, {P1, P3}, {P2})
    # Without section 1 in the run, 2 and 4 each build the small fallback axis, saved in one place: never together.
    assert not course.can_start(P4, [P2, P4], set(), {P2})
    assert course.can_start(P4, [P2, P4], {P2}, set())
    assert course.can_start(P3, [P2, P3], set(), {P2})


def test_the_declared_needs_are_the_sections_imports():
    """A section that starts importing another section's results must say so in `NEEDS`, or it would run beside it."""
    for section in SECTIONS:
        named = set()
        for path in (ROOT / section).glob("*.py"):
            for line in path.read_text(encoding="utf-8").splitlines():
                if re.match(r"\s*(from|import)\s", line):
                    named |= set(re.findall(r"\b(part\d_[a-z_]+)\b", line))
        assert named - {section} == set(NEEDS.get(section, ())), section


def test_sections_run_side_by_side_in_the_order_their_needs_allow(tmp_path, monkeypatch, capsys):
    events: list[tuple[str, str, float]] = []
    shares: list[tuple[str, int]] = []
    lock = threading.Lock()

    def fake_run_section(section, out_dir, env, timeout=3600, relay=True, tag=None, threads=None):
        with lock:
            events.append(("start", section, time.monotonic()))
        assert env["OMP_NUM_THREADS"] == "1" and tag == section
        time.sleep(0.05)  # a kernel starts before its first cell asks for its share
        shares.append((section, threads()))
        time.sleep({P1: 0.2, P2: 0.3, P3: 0.6, P4: 0.2}[section])
        _ran_on_tiny(section, env)
        with lock:
            events.append(("end", section, time.monotonic()))
        return True, "ok", 0.1

    monkeypatch.setattr(course, "run_section", fake_run_section)
    monkeypatch.setattr(course, "available_cores", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert course.main(["--profile", "tiny", "--jobs", "2", "--out", str(tmp_path)]) == 0
    at = {(kind, section): t for kind, section, t in events}
    assert at["start", P3] < at["end", P1]  # 1 and 3 overlap
    assert at["start", P2] >= at["end", P1]  # 2 after 1, while 3 still runs
    assert at["start", P2] < at["end", P3]
    assert at["start", P4] >= max(at["end", P1], at["end", P3])
    assert shares[:2] == [(P1, 1), (P3, 1)]  # one core each while two run
    assert "Running 2 sections at a time, 1 CPU thread(s) each" in capsys.readouterr().out


def test_one_job_runs_the_sections_one_after_another(tmp_path, monkeypatch):
    order = []

    def fake_run_section(section, out_dir, env, timeout=3600, relay=True, tag=None, threads=None):
        order.append(section)
        assert env.get("OMP_NUM_THREADS") == "7" and tag is None and threads is None
        _ran_on_tiny(section, env)
        return True, "ok", 0.0

    monkeypatch.setattr(course, "run_section", fake_run_section)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # the user's own setting is kept
    assert course.main(["--profile", "tiny", "--jobs", "1", "--sections", "3,1", "--out", str(tmp_path)]) == 0
    assert order == [P3, P1]
    with pytest.raises(SystemExit):
        course.main(["--profile", "tiny", "--jobs", "0"])


@pytest.mark.notebook
def test_the_kernel_takes_its_share_of_the_cores_before_each_cell_and_stores_nothing_of_it(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "chapters").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(c) for c in ["import torch", "torch.get_num_threads()", "torch.get_num_threads()"]
    ]
    nbformat.write(nb, root / "chapters" / f"{P1}_solutions.ipynb")
    monkeypatch.setattr(course, "ROOT", root)
    shares = iter([1, 1, 1, 2, 2, 2])  # asked twice per cell: the second section ends after cell 2 starts
    ok, message, _ = course.run_section(P1, tmp_path / "out", relay=False, threads=lambda: next(shares))
    assert ok, message
    executed = nbformat.read(tmp_path / "out" / f"{P1}_solutions.ipynb", as_version=4)
    assert [cell.execution_count for cell in executed.cells] == [1, 2, 3]  # the silent calls count for nothing
    assert [cell.outputs[0]["data"]["text/plain"] for cell in executed.cells[1:]] == ["1", "2"]


def test_tagged_relay_writes_whole_lines_each_with_its_section(capsys):
    relay = course._Relay("part3_contrastive")
    relay.write("stdout", "scoring ")
    relay.write("stdout", "40 items\nhalf")
    relay.write("stderr", "10%|#  |\r50%|#####|\r")
    relay.close()
    relay.write("stdout", "")
    out, err = capsys.readouterr()
    assert out == "[part3_contrastive] scoring 40 items\n[part3_contrastive] half\n"
    assert err == "[part3_contrastive] 10%|#  |\n[part3_contrastive] 50%|#####|\n"
    untagged = course._Relay(None)
    untagged.write("stdout", "as it comes")
    assert capsys.readouterr().out == "as it comes"


class _Numbered:
    """A judge backend that answers prompt "k" with k mod 4, instantly."""

    name = "rule"
    model_name = "numbered"

    def score(self, prompts, scale):
        return [int(p) % 4 for p in prompts]


def _score_many(cache: str, start: int, count: int, barrier) -> None:
    judge = Judge(_Numbered(), cache_path=cache, save_every=0.0)
    barrier.wait(60)  # both processes save at the same time
    for k in range(start, start + count):
        judge.score([str(k)], ADHERENCE_0_3)


def test_two_processes_saving_one_judge_cache_lose_no_answer(tmp_path):
    cache = str(tmp_path / "judge.json")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_score_many, args=(cache, start, 150, barrier)) for start in (0, 1000)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    assert len(json.loads(Path(cache).read_text())) == 300
