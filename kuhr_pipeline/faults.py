"""Named points where a test can kill the process, to prove that a kill there harms nothing.

`KUHR_FAULT=<name>` in the environment makes `fault_point(name)` end the process with SIGKILL
(what the OOM killer or a lost node does), deterministically, instead of racing a kill against
the code from outside. Unset, it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal


def fault_point(name: str) -> None:
    if os.environ.get("KUHR_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
