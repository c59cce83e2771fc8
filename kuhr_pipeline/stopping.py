"""Stopping a command-line run within seconds on SIGTERM or Ctrl-C.

Why not Dagster's own handling: while a run executes, Dagster only notes an interrupt and looks at
it between steps (and its in-process executor never looks), so a `deliver` told to stop kept
scanning for minutes, or forever while it waited for a pool slot. Here the run works on a thread
of its own; the main thread keeps the signal handlers, and on a signal it lets `on_stop` record
the stop (run canceled, staging removed), then ends the process at once: whatever the worker was
writing was staging (removed; from the signal on, sealed.py makes no new file or folder), or a
hidden delivery folder that the next run removes.

A delivery's commit (its audit line, then the rename) runs under `COMMIT`, which the stop takes
first: a delivery is either committed whole before the process ends, or not at all.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
COMMIT = threading.Lock()
STOPPING = threading.Event()  # set on a signal: no new staging file or folder is made after it
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Signalled(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def exit_code_for(signum: int) -> int:
    """The shell's convention: 128 + the signal (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + signum


def run_stoppably(work: Callable[[], T], on_stop: Callable[[int], None]) -> T:
    """`work()` on a thread; on SIGTERM or SIGINT call `on_stop(signal)` and end the process
    with `exit_code_for(signal)`. Only from the main thread (signals are delivered there)."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # handed to the main thread, raised there
            outcome["error"] = error

    def handler(signum: int, _frame: object) -> None:
        raise _Signalled(signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    worker = threading.Thread(target=target, name="kuhr-run", daemon=True)
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
    except _Signalled as stop:
        for s in STOP_SIGNALS:  # a second signal while stopping must not interrupt the clean-up
            signal.signal(s, signal.SIG_IGN)
        STOPPING.set()
        with COMMIT:
            on_stop(stop.signum)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exit_code_for(stop.signum))
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
