"""A step process of `deliver --executor multiprocess` ends with `deliver` (processes.die_with_parent):
a step its executor started while a stop was under way must not outlive it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

PARENT = """
import multiprocessing, os, sys, time
from pathlib import Path
from kuhr_pipeline.processes import die_with_parent

def step(ready, with_parent):
    if with_parent == "1":
        die_with_parent()
    Path(ready).write_text(str(os.getpid()))
    time.sleep(60)

if __name__ == "__main__":
    ready = sys.argv[1]
    multiprocessing.get_context("spawn").Process(target=step, args=(ready, sys.argv[2])).start()
    while not Path(ready).exists() or not Path(ready).read_text():
        time.sleep(0.05)
    os._exit(0)  # as a stopped deliver ends
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _child_after_parent_ends(tmp_path: Path, with_parent: bool, wait: float) -> tuple[int, bool]:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    ready = tmp_path / f"ready-{with_parent}"
    subprocess.run([sys.executable, str(script), str(ready), "1" if with_parent else "0"], check=True, timeout=60)
    pid = int(ready.read_text())
    deadline = time.monotonic() + wait
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid, _alive(pid)


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="Linux only (prctl)")
def test_a_step_process_ends_with_the_process_that_started_it(tmp_path: Path) -> None:
    _, alive = _child_after_parent_ends(tmp_path, with_parent=True, wait=5)
    assert not alive
    pid, alive = _child_after_parent_ends(tmp_path, with_parent=False, wait=1)  # without it, the child lives on
    try:
        assert alive
    finally:
        subprocess.run(["kill", "-9", str(pid)], check=False)
