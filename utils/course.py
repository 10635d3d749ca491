"""The course runner: the README's main job.

``python -m utils.course [--profile P] [--sections 1,3]`` executes the solutions notebooks under a
profile, each in its own kernel, and relays what the notebook prints as it runs (which cell of how
many, and the long steps' own progress bars). It writes each executed notebook and its HTML export
under ``outputs/<profile>/`` (`utils.reports`: figures drawn offline, progress bars collapsed; checked
in a browser by ``python -m utils.reports --check outputs/<profile>``), each section's headline
results to ``outputs/<profile>/results/``, and where the time went to ``outputs/<profile>/timings/``,
then prints one table of every section's headline results. A failing cell is named (section and cell) and the sections that finished are kept;
so is a kernel that dies or a cell that runs past ``--timeout``. One Ctrl-C stops the running kernels (they
run in sessions of their own, so the terminal's interrupt never reaches them) and exits 130.

On a machine with no GPU and two or more cores it runs two sections at a time, each kernel on its share of
the cores (``--jobs``): a section starts once the sections it reads (`utils.sections.NEEDS`) have finished,
so 1 and 3 run side by side, then 2 and 4. Decoding a few rows at a time cannot keep two cores busy, and
the offline model's logits and greedy replies are bitwise equal on one thread and on two
(`tests/utils/test_thread_equality.py`), so the results do not change.

The runner never changes its own process's environment: the profile and the output folders reach
the notebooks through their kernels' environment only.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from utils import environment
from utils.reports import save_report
from utils.results import PROFILE_KEY, read_results, summary_table
from utils.sections import NEEDS, ROOT, section_by_number

if TYPE_CHECKING:
    from jupyter_client.asynchronous.client import AsyncKernelClient

CODE_ROOT = ROOT  # the checkout whose code the kernels import (ROOT, the notebooks' home, may differ in tests)


def _failing_cell(nb) -> tuple[int, str]:
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                return i, f"{out.get('ename')}: {out.get('evalue')} (cell starts: {first_line[:60]!r})"
    return -1, "unknown"


_WRITE_LOCK = threading.Lock()

# The kernel manager of each section whose kernel is running, so one Ctrl-C can stop them: the kernels run in
# sessions of their own, so the terminal's interrupt never reaches them.
_LIVE_KERNELS: dict[str, Any] = {}
_STOPPED: set[str] = set()  # sections whose kernel the runner stopped (Ctrl-C)
_STOP = threading.Event()  # set by `stop_kernels`: a kernel that starts afterwards is stopped at once


def _kill(section: str, km: Any) -> bool:
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if process is None or process.poll() is not None:
        return False
    _STOPPED.add(section)
    process.kill()
    return True


def stop_kernels() -> list[str]:
    """Kill every running section's kernel (their notebooks then end with a dead kernel), and any kernel
    that starts later in this run; returns the sections stopped."""
    _STOP.set()
    return [section for section, km in list(_LIVE_KERNELS.items()) if _kill(section, km)]


class _Relay:
    """Writes a section's relayed output to this process's stdout/stderr; with a tag (sections running side
    by side), whole lines only, each starting with the tag, so two sections' lines never mix."""

    def __init__(self, tag: str | None):
        self.tag = tag
        self.partial = {"stdout": "", "stderr": ""}

    def write(self, name: str, text: str) -> None:
        stream = sys.stderr if name == "stderr" else sys.stdout
        if self.tag is None:
            stream.write(text)
            stream.flush()
            return
        *lines, self.partial[name] = (self.partial[name] + text.replace("\r", "\n")).split("\n")
        with _WRITE_LOCK:
            stream.writelines(f"[{self.tag}] {line}\n" for line in lines if line.strip())
            stream.flush()

    def close(self) -> None:
        for name in list(self.partial):
            if self.partial[name].strip():
                self.write(name, "\n")


def _course_client(nb, section: str, relay: _Relay | None, threads: Callable[[], int] | None, **kwargs):
    """A notebook client that, before each code cell, prints "cell i/n" and sets the kernel's CPU threads to
    ``threads()`` (when that changed), and relays the notebook's printed output as it arrives.

    Args:
        nb: the notebook.
        section: its section (named in the cell headers).
        relay: where relayed output goes (None: relay nothing).
        threads: the kernel's share of the cores now (None: leave the kernel's threads alone). Sections
            running side by side get one core each; the one still running after the other ends gets both.
        **kwargs: `nbclient.NotebookClient` options.
    """
    from nbclient import NotebookClient

    n_code = sum(cell.cell_type == "code" for cell in nb.cells)
    code_number = {i: k + 1 for k, i in enumerate(i for i, c in enumerate(nb.cells) if c.cell_type == "code")}

    class CourseClient(NotebookClient):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            self.kernel_threads: int | None = None
            self.cell_index = -1  # the cell executing (or last executed)

        async def async_start_new_kernel_client(self):
            kc = await super().async_start_new_kernel_client()
            _LIVE_KERNELS[section] = self.km
            if _STOP.is_set():
                _kill(section, self.km)
            return kc

        async def async_execute_cell(self, cell, cell_index, *args, **kw):
            self.cell_index = cell_index
            if cell.cell_type == "code":
                if threads is not None and threads() != self.kernel_threads:
                    # Silent: no output, no execution count, nothing stored in the notebook.
                    self.kernel_threads = threads()
                    kernel = cast("AsyncKernelClient", self.kc)
                    await kernel.execute_interactive(
                        f"__import__('torch').set_num_threads({self.kernel_threads})",
                        silent=True,
                        store_history=False,
                        timeout=60,
                    )
                if relay is not None:
                    first = next((line for line in cell.source.splitlines() if line.strip()), "")
                    header = f"cell {code_number[cell_index]}/{n_code}: {first[:70]}"
                    relay.write("stderr", f"\n{header}\n" if relay.tag else f"\n[{section}] {header}\n")
            return await super().async_execute_cell(cell, cell_index, *args, **kw)

        def output(self, outs, msg, display_id, cell_index):
            content = msg.get("content", {})
            if relay is not None and msg.get("msg_type") == "stream":
                relay.write(content.get("name", "stdout"), content.get("text", ""))
            return super().output(outs, msg, display_id, cell_index)

    return CourseClient(nb, **kwargs)


def run_section(
    section: str,
    out_dir: Path,
    env: dict[str, str] | None = None,
    timeout: int = 3600,
    relay: bool = True,
    tag: str | None = None,
    threads: Callable[[], int] | None = None,
) -> tuple[bool, str, float]:
    """Execute one solutions notebook in a fresh kernel; save it (even when it fails) and its HTML export,
    progress bars collapsed (`utils.reports.save_report`; the terminal got them as they ran).

    Args:
        section: the section package name.
        out_dir: where the executed notebook and its HTML go.
        env: the kernel's environment (default: this process's).
        timeout: seconds allowed per cell.
        relay: print the notebook's output and cell progress as it runs.
        tag: start every relayed line with ``[tag]`` (whole lines only), for sections running side by side.
        threads: the kernel's share of the cores, asked before each code cell (None: the kernel's default).

    Returns:
        (ok, message, seconds).
    """
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = ROOT / "chapters" / f"{section}_solutions.ipynb"
    nb = nbformat.read(path, as_version=4)
    options: dict[str, Any] = dict(
        timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    relayed = _Relay(tag)
    client = _course_client(nb, section, relayed if relay else None, threads, **options)
    start = time.perf_counter()
    ok, message = True, "ok"
    _STOPPED.discard(section)
    try:
        client.execute(env=dict(os.environ if env is None else env))
    except CellExecutionError:
        ok = False
        index, error = _failing_cell(nb)
        message = f"failed in cell {index}: {error}"
    except CellTimeoutError:
        ok = False
        message = f"timed out in cell {client.cell_index}{_cell_start(nb, client.cell_index)}: over {timeout}s"
    except DeadKernelError:
        ok = False
        why = "stopped by Ctrl-C" if section in _STOPPED else "the kernel died (killed, e.g. for memory)"
        message = f"{why} in cell {client.cell_index}{_cell_start(nb, client.cell_index)}"
    except Exception as err:  # noqa: BLE001 - a kernel that cannot start, or one lost otherwise: the section failed
        ok = False
        message = f"the runner could not run it: {type(err).__name__}: {err}"
    finally:
        _LIVE_KERNELS.pop(section, None)
        relayed.close()
        save_report(nb, out_dir / path.name)
    return ok, message, time.perf_counter() - start


def _cell_start(nb, index: int) -> str:
    """`` (cell starts: '...')`` for a notebook cell, or nothing for no cell."""
    if not 0 <= index < len(nb.cells):
        return ""
    source = nb.cells[index].source.strip()
    return f" (cell starts: {source.splitlines()[0][:60]!r})" if source else ""


def timings_table(sections: list[str], timings_dir: Path, wall: dict[str, float]) -> str:
    """Per section: wall time, and the time spent loading models, prefilling and decoding replies, capturing
    activations, judging and reading the model's likelihoods of written answers (`utils.likelihood`; generation's
    own bookkeeping counts as other)."""
    from utils.timing import read_timings

    kinds = ["model load", "prefill", "decode", "capture", "judge", "likelihood"]
    lines = [f"{'section':<22}{'wall s':>8}" + "".join(f"{k + ' s':>14}" for k in kinds) + f"{'other s':>10}"]
    for section in sections:
        totals = read_timings(timings_dir / f"{section}.jsonl")
        spent = [totals[k]["seconds"] if k in totals else 0.0 for k in kinds]
        seconds = wall.get(section, 0.0)
        lines.append(
            f"{section:<22}{seconds:>8.0f}" + "".join(f"{s:>14.0f}" for s in spent) + f"{seconds - sum(spent):>10.0f}"
        )
    return "\n".join(lines)


def available_cores() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_jobs() -> int:
    """Sections run at a time by default: 2 on a machine with no GPU and two or more cores, else 1 (on a
    GPU, one section at a time has the whole device)."""
    import torch

    return 1 if torch.cuda.is_available() or available_cores() < 2 else 2


def can_start(section: str, requested: list[str], finished: set[str], running: set[str]) -> bool:
    """Whether ``section`` may start now.

    It waits for every requested section it reads (`utils.sections.NEEDS`). A section it reads that was not
    requested is built by the consumer itself (a small fallback, saved where its owner saves it), so two
    consumers of the same missing section never run side by side.
    """
    needs = NEEDS.get(section, ())
    if any(need in requested and need not in finished for need in needs):
        return False
    missing = {need for need in needs if need not in requested}
    return not any(missing & set(NEEDS.get(other, ())) for other in running)


def section_environment(
    profile: str, results_dir: Path, timings_dir: Path, section: str, threads: int | None = None
) -> dict[str, str]:
    """The environment a section's kernel runs with: this process's plus the course's settings.

    ``PYTHONPATH`` starts with this checkout, so the kernel runs this checkout's code even when the
    course was installed (``pip install -e``) from another clone. ``threads`` (sections running side by
    side) sets the kernel's CPU threads, unless the environment already does.
    """
    env = dict(os.environ)
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, str(threads))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CODE_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(
        {
            environment.PROFILE: profile,
            environment.RESULTS_DIR: str(results_dir),
            environment.TIMINGS_FILE: str(timings_dir / f"{section}.jsonl"),
            environment.PLAIN_PROGRESS: "1",
            environment.NO_WIDGETS: "1",  # stored notebooks show the panels' tables (utils.panels)
            "TQDM_MININTERVAL": "5",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the course's solutions notebooks under a profile.")
    parser.add_argument(
        "--profile", default=None, help="full, lite, offline, tiny or auto (default: COURSE_PROFILE or auto)"
    )
    parser.add_argument("--sections", default="1,2,3,4", help="comma-separated section numbers, e.g. 1,3")
    parser.add_argument("--out", default=str(ROOT / "outputs"), help="where executed notebooks and HTML go")
    parser.add_argument("--quiet", action="store_true", help="do not relay the notebooks' output")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="sections run at a time, each on its share of the cores (default: 2 with no GPU and 2+ cores, else 1)",
    )
    parser.add_argument(
        "--timeout", type=int, default=3600, help="seconds a cell may run before its section fails (default 3600)"
    )
    parser.add_argument(
        "--record-expected",
        action="store_true",
        help="after a run with no failures, write each section's expected results (<section>/expected/<profile>.json) "
        "and regenerate the notebooks that show them",
    )
    args = parser.parse_args(argv)
    from utils.profiles import get_profile

    profile = get_profile(args.profile)
    try:
        named = [section_by_number(s.strip()) for s in args.sections.split(",")]
    except ValueError as err:
        parser.error(f"--sections: {err}")
    sections = list(dict.fromkeys(named))  # each section once: two kernels would write one report and results
    if len(sections) < len(named):
        twice = sorted({s for s in named if named.count(s) > 1})
        print(f"--sections {args.sections} names {', '.join(twice)} more than once: each runs once")
    out_dir = Path(args.out) / profile.name
    results_dir, timings_dir = out_dir / "results", out_dir / "timings"
    timings_dir.mkdir(parents=True, exist_ok=True)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs: must be 1 or more, not {args.jobs}")
    jobs = min(args.jobs or default_jobs(), len(sections))
    threads = max(1, available_cores() // jobs) if jobs > 1 else None
    if jobs > 1:
        print(f"Running {jobs} sections at a time, {threads} CPU thread(s) each (--jobs 1: one after another)")
    failures: list[str] = []
    wall: dict[str, float] = {}
    start = time.perf_counter()

    def run(number: int, section: str) -> tuple[bool, str, float]:
        print(f"\n=== [{number}/{len(sections)}] {section} (profile {profile.name}) ===", flush=True)
        (results_dir / f"{section}.json").unlink(missing_ok=True)
        (timings_dir / f"{section}.jsonl").unlink(missing_ok=True)
        env = section_environment(profile.name, results_dir, timings_dir, section, threads)
        side_by_side = jobs > 1
        return run_section(
            section,
            out_dir,
            env,
            timeout=args.timeout,
            relay=not args.quiet,
            tag=section if side_by_side else None,
            threads=share_of_cores if side_by_side else None,
        )

    def share_of_cores() -> int:
        return max(1, available_cores() // max(1, len(running)))

    def finish(section: str, outcome: tuple[bool, str, float]) -> None:
        ok, message, wall[section] = outcome
        ran_on = read_results(results_dir, section).get(PROFILE_KEY)
        if ok and ran_on != profile.name:
            ok, message = False, f"ran on profile {ran_on!r}, not the requested {profile.name!r}"
        print(f"\n{section}: {message} ({wall[section]:.0f}s) -> {out_dir / (section + '_solutions.html')}", flush=True)
        if not ok:
            failures.append(f"{section}: {message}")

    def outcome_of(future: Future) -> tuple[bool, str, float]:
        try:
            return future.result()
        except Exception as err:  # noqa: BLE001 - the runner's own failure for one section: report it, go on
            return False, f"the runner could not run it: {type(err).__name__}: {err}", 0.0

    pending, finished = list(sections), set[str]()
    running: dict[Future, str] = {}  # each running section's future
    interrupted = False
    _STOP.clear()
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        while pending or running:
            for section in list(pending):
                if len(running) < jobs and can_start(section, sections, finished, set(running.values())):
                    pending.remove(section)
                    running[pool.submit(run, sections.index(section) + 1, section)] = section
            if not running:
                raise RuntimeError(f"No section can start: {pending} wait for sections that never run")
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                section = running.pop(future)
                finished.add(section)
                finish(section, outcome_of(future))
    except KeyboardInterrupt:
        # One Ctrl-C: stop the kernels (in sessions of their own, they never see it), keep what finished.
        interrupted = True
        print(f"\nInterrupted: stopping {', '.join(running.values()) or 'nothing'}", flush=True)
        stop_kernels()
        for future, section in running.items():
            finish(section, outcome_of(future))
        for section in pending:
            failures.append(f"{section}: not run (interrupted)")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _STOP.clear()  # "stop every kernel that starts" ends with this run (a later run in this process starts its own)
    print(f"\nProfile {profile.name}; wall time {time.perf_counter() - start:.0f}s\n")
    print(timings_table(sections, timings_dir, wall) + "\n")
    print(summary_table(sections, results_dir))
    for failure in failures:
        print(f"FAILED {failure}")
    if interrupted:
        return 130
    if args.record_expected and not failures:
        from utils import build_notebooks
        from utils.expected import record_expected

        for path in record_expected(sections, results_dir, profile.name):
            print(f"Recorded expected results: {path}")
        build_notebooks.main([])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
