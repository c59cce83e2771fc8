"""Great Expectations in a process of its own, started before it is needed.

Why: importing GX costs 1.5–5 s of one core by machine (some 1 500 modules). `deliver` spends its first
seconds importing Dagster and preparing the run on one core while the other idles; a process
started first imports GX meanwhile, and validation finds it ready (bench/README.md has the
figures). Validation sends it frames of distinct values and gets counts back (validate.py: never
a national id, never GX's sample values). It is ended when the process that started it exits, and
ends by itself if that one dies (its input closes). It runs at a low priority (nice 10): its
import would otherwise take a core from the passes, which leave some idle. Should it still be
importing when validation asks, the passes are over and the cores idle by then.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import pickle
import subprocess
import sys
import threading
import types
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

if TYPE_CHECKING:  # not imported at run time: `start` is called first thing, before anything heavy
    import pandas as pd

    from kuhr_pipeline.quality.suites import Expectation

Request = tuple["pd.DataFrame", np.ndarray, list["Expectation"]]
_worker: _GxProcess | None = None
_lock = threading.Lock()  # guards `_worker`
_validating = threading.Lock()


def start() -> None:
    """Start the GX process now if it is not running (cheap to call again)."""
    global _worker
    with _lock:
        if _worker is None or not _worker.alive():
            _worker = _GxProcess()


def run_all(requests: Iterable[Request]) -> Generator[list[dict[str, Any]], None, None]:
    """Validate each request — distinct values, each value's number of rows, the expectations —
    in the GX process (started here if it is not running); results in order, counts weighted by
    rows. The next request is taken from `requests` (the caller counts the next column's values)
    while GX works on the current one: two requests at most are in flight. Close the iterator
    when stopping early (validate.py uses `contextlib.closing`)."""
    with _validating:  # one validation at a time; `stop` never waits for this lock
        start()
        worker = _worker
        assert worker is not None
        in_flight = 0
        try:
            for request in requests:
                worker.send(request)
                in_flight += 1
                if in_flight == 2:
                    in_flight -= 1
                    yield worker.receive()
            while in_flight:
                in_flight -= 1
                yield worker.receive()
        finally:
            worker.discard_replies(in_flight)  # a caller that stopped early leaves replies in step


@atexit.register
def stop() -> None:
    """End the GX process (at exit, or to free its memory)."""
    global _worker
    with _lock:
        if _worker is not None:
            _worker.stop()
            _worker = None


class _GxProcess:
    def __init__(self) -> None:
        self._owner = os.getpid()
        # Telemetry off: GX 1.24 sends no analytics, earlier 1.x releases did by default; this keeps it off.
        environment = {**os.environ, "GX_ANALYTICS_ENABLED": "False"}
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=environment
        )

    def alive(self) -> bool:
        """Running, and started by this process (a forked child must not share its pipes)."""
        return self._owner == os.getpid() and self._process.poll() is None

    def send(self, request: Request) -> None:
        assert self._process.stdin is not None
        try:
            pickle.dump(request, self._process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._process.stdin.flush()
        except BrokenPipeError as exc:
            raise self._ended() from exc

    def receive(self) -> Any:
        assert self._process.stdout is not None
        try:
            status, value = pickle.load(self._process.stdout)
        except EOFError as exc:
            raise self._ended() from exc
        if status != "ok":
            raise RuntimeError(f"Great Expectations failed: {value}")
        return value

    def discard_replies(self, count: int) -> None:
        for _ in range(count):
            try:
                self.receive()
            except RuntimeError:
                continue  # a failed request's reply, or the process has ended: nothing left to keep in step

    def _ended(self) -> RuntimeError:
        return RuntimeError(f"the Great Expectations process ended (exit {self._process.poll()})")

    def stop(self) -> None:
        """Killed, not asked: it holds nothing worth keeping and may be in the middle of its import."""
        if self._owner != os.getpid():
            return  # a forked child's copy: the process belongs to the parent
        self._process.kill()
        self._process.wait()
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                pipe.close()


def _serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """The GX process: import GX, then answer requests until the input closes."""
    validator = _Validator()
    while True:
        try:
            frame, weights, expectations = pickle.load(requests)
        except (EOFError, pickle.UnpicklingError):  # closed, or cut off by the caller's end: stop quietly
            return
        try:
            reply: tuple[str, Any] = ("ok", validator.run(frame, weights, expectations))
        except Exception as exc:  # reported to the caller, which raises it
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
            replies.flush()
        except BrokenPipeError:  # the caller has ended
            return


_UNUSED_AT_IMPORT = ("altair", "scipy.stats")


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its attributes is asked for, then imports it.

    Not importlib's LazyLoader: that one loads on any attribute, and the import system reads
    `__spec__` and `__path__` of every module it binds, so it loaded at once."""

    def __getattr__(self, attribute: str) -> Any:
        del sys.modules[self.__name__]
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)
        return getattr(module, attribute)


def _defer(name: str) -> None:
    """Put off importing `name` (its parent package is imported now) unless it is already in."""
    if name in sys.modules:
        return
    parent = name.rpartition(".")[0]
    if parent:
        importlib.import_module(parent)
    sys.modules[name] = _Deferred(name)


class _Validator:
    """One ephemeral GX context (no files, no network, no progress bars), reused for every frame."""

    def __init__(self) -> None:
        # GX validates pandas frames here. Its SQL backends would import SQLAlchemy (about a sixth
        # of GX's import) for nothing; GX runs as if SQLAlchemy were not installed when it is hidden.
        sys.modules.setdefault("sqlalchemy", None)  # type: ignore[arg-type]
        # One expectation we never use (KL divergence) imports SciPy's statistics and Altair at
        # module level: some 40 % of GX's import, put off until anything is asked of them.
        for name in _UNUSED_AT_IMPORT:
            _defer(name)
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        import kuhr_pipeline.quality.gx_custom  # noqa: F401 - registers the leak guard expectation

        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        self._gx = gx
        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = self._context.data_sources.add_pandas("kuhr").add_dataframe_asset("frame")
        self._batch = asset.add_batch_definition_whole_dataframe("whole")

    def run(self, frame: pd.DataFrame, weights: np.ndarray, expectations: list[Expectation]) -> list[dict[str, Any]]:
        """Validate distinct values; counts are weighted by each value's number of rows."""
        suite = self._gx.ExpectationSuite(name="kuhr", expectations=[dict(e) for e in expectations])
        result = self._batch.get_batch(batch_parameters={"dataframe": frame}).validate(
            suite, result_format={"result_format": "COMPLETE"}
        )
        out = []
        for r in result.results:
            raw = r.result or {}
            unexpected = raw.get("unexpected_index_list") or []
            info = r.exception_info or {}
            raised = bool(info.get("raised_exception")) if isinstance(info, dict) else False
            out.append(
                {
                    "success": bool(r.success),
                    "element_count": int(weights.sum()),
                    "unexpected_count": int(weights[np.asarray(unexpected, dtype=np.int64)].sum()),
                    "exception": str(info.get("exception_message"))[:200] if raised else None,
                }
            )
        return out


if __name__ == "__main__":
    os.nice(10)  # the passes first: GX imports on what they leave idle (bench/README.md, eleventh session)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything GX prints goes to stderr, not into the replies
    _serve(sys.stdin.buffer, replies)
