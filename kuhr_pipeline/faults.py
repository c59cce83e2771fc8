"""Named points where a test can kill the process, to prove that a kill there harms nothing.

`KUHR_FAULT=<name>` in the environment makes `fault_point(name)` end the process with SIGKILL
(what the OOM killer or a lost node does), deterministically, instead of racing a kill against
the code from outside. Unset, it costs one dictionary lookup. With `KUHR_FAULT_ONCE=<file>` too,
only the first process to reach the point dies (it makes the file): the one a retry replaces.
"""

from __future__ import annotations

import os
import signal


def fault_point(name: str) -> None:
    if os.environ.get("KUHR_FAULT") != name:
        return
    once = os.environ.get("KUHR_FAULT_ONCE")
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    os.kill(os.getpid(), signal.SIGKILL)
