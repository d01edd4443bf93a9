"""The test stacks' supervisor restarts a process that exits, as compose.yaml's `restart: unless-stopped` does."""

from __future__ import annotations

import subprocess
import sys
import time

from ops.tests.processes import Supervised, wait_until


def test_a_process_that_exits_is_started_again_and_counted() -> None:
    def short_lived() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"], start_new_session=True)  # noqa: S603

    supervised = Supervised(short_lived, check_every_s=0.05).start()
    try:
        wait_until(lambda: supervised.restarts >= 2, 20, "two restarts")
    finally:
        supervised.stop()
    assert supervised.process is not None and supervised.process.poll() is not None  # stopped for good
    restarts = supervised.restarts
    time.sleep(0.5)
    assert supervised.restarts == restarts  # no restart after stop()
