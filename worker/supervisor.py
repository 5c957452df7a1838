"""``python -m worker.supervisor [more rq worker options]``: the worker of the Procfile and of
Compose. It runs ``rq worker`` with this service's options (``rq_worker_command``) and starts
it again whenever it exits, until it is told to stop.

Why a supervisor, and why this one: honcho stops every process when one exits, so a worker
that dies must be started again by something inside the Procfile's worker line. The worker
now waits out Redis outages (``worker.connection``), so a restart is for the rest: a crash,
the kernel's OOM killer, ``--max-jobs`` recycling. RQ's ``rq worker-pool`` respawns dead
workers, but it cannot pass the options this service runs its worker with (``--worker-ttl``,
``--job-monitoring-interval``, ``--maintenance-interval``, ``--max-jobs``), it respawns a
crashing worker every second without back-off, and RQ calls it beta. A restarting shell
loop in the Procfile would not pass ``docker stop``'s SIGTERM on. This one is small: one
child, back-off between quick failures, signals passed on, the child's exit code returned.

Each run of ``rq worker`` gets a name from the supervisor, and each run after the first is
told its predecessor's name (``BOOK_WORKER_PREDECESSOR``): a worker that was killed leaves its
jobs looking ``started`` until their heartbeats expire (a minute or more), but the one the
supervisor starts next knows it is dead and has RQ handle them at once (``BookWorker``).

The child runs in the supervisor's process group, so honcho's SIGTERM (sent to the group)
reaches it directly as well; the copy passed on arrives within RQ's one-second window for
a repeated signal, so it is not taken for a second (cold) shutdown request. Under Compose,
``init: true`` runs the supervisor under an init that reaps orphans and passes signals on.
"""

from __future__ import annotations

import logging
import logging.config
import os
import signal
import subprocess
import sys
import time
import uuid
from types import FrameType

from books.logs import LOGGING
from books.settings import Settings, stop_on_config_error

# A run at least this long was not a crash loop: the next restart waits a second again.
STABLE_RUN_SECONDS = 60.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
BURST_FLAGS = {"--burst", "-b"}
NAME_FLAGS = {"--name", "-n"}
# Names the worker the supervisor ran before, to the one it starts after it (worker/rq_worker.py).
PREDECESSOR_VARIABLE = "BOOK_WORKER_PREDECESSOR"

log = logging.getLogger("worker.supervisor")


def rq_worker_command(settings: Settings, extra_args: list[str]) -> list[str]:
    """The ``rq worker`` command line: RQ's CLI with this service's classes and timings."""
    return [
        sys.executable,
        "-m",
        "rq.cli",
        "worker",
        "--config",
        "worker.rq_settings",
        "--connection-class",
        "worker.connection.WorkerRedis",
        "--worker-class",
        "worker.rq_worker.BookWorker" if settings.worker_fork else "worker.rq_worker.InProcessBookWorker",
        "--with-scheduler",
        "--worker-ttl",
        str(settings.worker_ttl),
        "--job-monitoring-interval",
        "10",
        "--maintenance-interval",
        "30",
        *extra_args,
    ]


def restart_delay(quick_failures: int, delay_max: float) -> float:
    """Seconds to wait before the next start: 1, 2, 4… up to ``delay_max`` for runs that keep
    ending quickly."""
    return min(delay_max, 2.0 ** (quick_failures - 1))


class Supervisor:
    """Runs one command, starting it again whenever it exits, until a stop signal."""

    def __init__(self, command: list[str], delay_max: float) -> None:
        self.command = command
        self.delay_max = delay_max
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None
        # A worker named by the command's own options is not named here, nor told its predecessor.
        self.names_workers = not any(arg in NAME_FLAGS or arg.startswith("--name=") for arg in command)
        self.child_name: str | None = None

    def run(self) -> int:
        """Supervise until told to stop; the exit code of the last run of the command."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._stop)
        quick_failures = 0
        while True:
            started = time.monotonic()
            self.child = self._start_child()
            code = self.child.wait()
            ran = time.monotonic() - started
            if self.stopping:
                return code if code >= 0 else 128 - code
            quick_failures = quick_failures + 1 if ran < STABLE_RUN_SECONDS else 1
            delay = restart_delay(quick_failures, self.delay_max)
            log.warning(
                "rq worker exited with code %s after %.0f s; starting it again in %.0f s",
                code,
                ran,
                delay,
                extra={"fields": {"exit_code": code, "ran_seconds": round(ran, 1), "restart_in": delay}},
            )
            if not self._sleep(delay):
                return 0

    def _start_child(self) -> subprocess.Popen[bytes]:
        """Start the command, named, and told the name of the one it follows."""
        if not self.names_workers:
            return subprocess.Popen(self.command)
        predecessor, self.child_name = self.child_name, uuid.uuid4().hex
        env = {name: value for name, value in os.environ.items() if name != PREDECESSOR_VARIABLE}
        if predecessor:
            env[PREDECESSOR_VARIABLE] = predecessor
        return subprocess.Popen([*self.command, "--name", self.child_name], env=env)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def _sleep(self, seconds: float) -> bool:
        """Wait, unless a stop signal comes first; whether to go on."""
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(0.1)
        return not self.stopping


def main(argv: list[str]) -> int:
    with stop_on_config_error():
        settings = Settings.from_env()
    command = rq_worker_command(settings, argv)
    if BURST_FLAGS & set(argv):  # a burst worker is meant to end when the queue is empty
        os.execv(command[0], command)
    logging.config.dictConfig(LOGGING)
    return Supervisor(command, settings.worker_restart_delay_max).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
