"""The peer harness's `Workers`, minus one hazard: it never signals a process group
after the group's leader has been reaped.

`common.Workers.stop` ends with `os.killpg(pid, SIGKILL)` "to make sure nothing of
the group is left". Once the leader has exited and been waited for, that id is free,
and with `pid_max` at 32768 a busy machine hands it out again within minutes, often to
another session leader (a test's server started with `start_new_session`), which the
stray SIGKILL then kills. jobctl's server has no children, so the sweep is not needed.
"""

from __future__ import annotations

import os
import signal
import subprocess

import common


class Workers(common.Workers):  # type: ignore[misc]
    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # still ours: not yet reaped
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()
