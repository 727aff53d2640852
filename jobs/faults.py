"""Named fail points for the fault-injection tests (DESIGN §6: a run killed at any point).

`RISKINSIGHT_KILL_AT=<point>` makes the process SIGKILL itself when it reaches that point, the
way an OOM-killer or a lost node would end it: no cleanup, no finally blocks. Unset, a point costs
one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "RISKINSIGHT_KILL_AT"


def point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
