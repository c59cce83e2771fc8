"""Which process runs a delivery, told apart from a later process that got the same pid."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _start_ticks(pid: int) -> str | None:
    """The process's start time (clock ticks since boot; /proc/<pid>/stat field 22), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # fields after the command name start at field 3


def this_process() -> str:
    """`host:pid:start` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def is_gone(identity: str) -> bool | None:
    """True if the process `identity` names has ended; None if it ran on another host (unknown here)."""
    host, _, rest = identity.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    return _start_ticks(int(pid)) != start


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """In a step process of `deliver --executor multiprocess`: be killed when the process that
    started it ends (the forkserver, which ends with `deliver`). A stopped `deliver` ends the step
    processes it sees, but its executor may start another one meanwhile (the next scan group's
    step); that one must not outlive it."""
    import multiprocessing

    if multiprocessing.parent_process() is None or not Path("/proc/self").exists():
        return  # not a multiprocessing child, or not Linux
    import ctypes
    import signal

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)  # the parent ended before the line above
