"""The worker's supervisor (restarts, back-off, signals, exit codes), the rq worker command it
runs, and the live worker count, without the service's processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from rq import Worker
from rq.utils import now, utcformat

from books.queue import BookQueue
from books.settings import ConfigError, Settings
from tests.processes import ROOT, wait_until
from worker.rq_worker import BookWorker
from worker.supervisor import restart_delay, rq_worker_command


def test_the_rq_worker_command_carries_the_settings_and_extra_options():
    command = rq_worker_command(Settings(worker_ttl=45), ["--max-jobs", "500"])
    assert command[:4] == [sys.executable, "-m", "rq.cli", "worker"]
    assert command[command.index("--worker-ttl") + 1] == "45"
    assert command[command.index("--worker-class") + 1] == "worker.rq_worker.BookWorker"
    assert command[command.index("--connection-class") + 1] == "worker.connection.WorkerRedis"
    assert "--with-scheduler" in command and command[-2:] == ["--max-jobs", "500"]


def test_restarts_back_off_up_to_the_maximum():
    assert [restart_delay(n, 30) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"WORKER_TTL": "10"}, "WORKER_TTL"),
        ({"WORKER_REDIS_BACKOFF_MAX": "0"}, "WORKER_REDIS_BACKOFF_MAX"),
        ({"WORKER_RESTART_DELAY_MAX": "-1"}, "WORKER_RESTART_DELAY_MAX"),
        ({"MAX_RECORD_BYTES": "0"}, "MAX_RECORD_BYTES"),
        ({"MAX_RECORD_DEPTH": "0"}, "MAX_RECORD_DEPTH"),
        ({"RECORD_CACHE_BYTES": "-1"}, "RECORD_CACHE_BYTES"),
    ],
)
def test_unusable_values_are_refused_naming_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env(env)


def supervise(tmp_path, child_code: str, delay_max: float = 30, **env: str) -> subprocess.Popen:
    """A Supervisor in a process of its own (signal handlers need a main thread), running a
    Python child that notes each start in ``starts``."""
    script = (
        "import sys; from worker.supervisor import Supervisor; "
        f"child = [sys.executable, '-c', {child_code!r}]; "
        f"sys.exit(Supervisor(child, {delay_max}).run())"
    )
    return subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env={"PYTHONPATH": str(ROOT), **env})


def starts(tmp_path) -> int:
    path = tmp_path / "starts"
    return len(path.read_text().splitlines()) if path.exists() else 0


NOTE_START = "import time; open('starts', 'a').write(f'{time.time()}\\n'); "


def test_a_child_that_keeps_failing_is_restarted_with_back_off(tmp_path):
    supervisor = supervise(tmp_path, NOTE_START + "raise SystemExit(3)", delay_max=2)
    try:
        wait_until(lambda: starts(tmp_path) >= 5, 30, 0.05, "five starts")
        times = [float(line) for line in (tmp_path / "starts").read_text().splitlines()]
        gaps = [later - earlier for earlier, later in zip(times, times[1:5], strict=False)]
        # Delays of 1, 2, 2, 2 s (the maximum), as each start notes its own time; a busy host adds.
        assert gaps[0] >= 0.9 and all(gap >= 1.9 for gap in gaps[1:]), gaps
        assert max(gaps) < 8, gaps
        time.sleep(0.5)  # the fifth child has ended (it only notes its start): the supervisor waits 2 s
    finally:
        supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(5) == 0, "stopped while waiting to restart"


def test_each_worker_is_named_and_told_the_name_of_the_one_before(tmp_path):
    note = (
        "import os, sys; open('names', 'a').write(f\"{sys.argv[1:]} {os.environ.get('BOOK_WORKER_PREDECESSOR')}\\n\"); "
    )
    # A predecessor named in the supervisor's own environment is no worker it ran: not passed on.
    supervisor = supervise(
        tmp_path, NOTE_START + note + "raise SystemExit(1)", delay_max=1, BOOK_WORKER_PREDECESSOR="outsider"
    )
    try:
        wait_until(lambda: starts(tmp_path) >= 3, 20, 0.05, "three starts")
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(5)
    runs = [line.rsplit(" ", 1) for line in (tmp_path / "names").read_text().splitlines()[:3]]
    names = [eval(argv)[1] for argv, _ in runs]
    assert [eval(argv)[0] for argv, _ in runs] == ["--name"] * 3 and len(set(names)) == 3
    assert [predecessor for _, predecessor in runs] == ["None", names[0], names[1]]


def test_a_stop_signal_is_passed_on_and_the_child_s_exit_code_returned(tmp_path):
    child = NOTE_START + (
        "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(7)); time.sleep(30)"
    )
    supervisor = supervise(tmp_path, child)
    wait_until(lambda: starts(tmp_path) == 1, 10, 0.05, "the child to start")
    time.sleep(0.2)  # its handler installed
    supervisor.send_signal(signal.SIGTERM)  # to the supervisor only, as docker stop sends it
    assert supervisor.wait(10) == 7
    assert starts(tmp_path) == 1


def test_a_child_killed_by_the_passed_on_signal_is_reported_as_128_plus_the_signal(tmp_path):
    supervisor = supervise(tmp_path, NOTE_START + "import time; time.sleep(30)")
    wait_until(lambda: starts(tmp_path) == 1, 10, 0.05, "the child to start")
    supervisor.send_signal(signal.SIGINT)  # passed on: the child dies of it
    assert supervisor.wait(10) == 128 + signal.SIGINT


def register(redis, queue: BookQueue, heartbeat_age: float) -> Worker:
    worker = Worker([queue.rq_queue], connection=redis)
    worker.register_birth()
    redis.hset(worker.key, "last_heartbeat", utcformat(now() - timedelta(seconds=heartbeat_age)))
    return worker


def test_the_live_worker_count_leaves_out_workers_not_heard_from_within_worker_ttl(redis):
    queue = BookQueue(redis, Settings(worker_ttl=30))
    register(redis, queue, 1)
    register(redis, queue, 25)
    register(redis, queue, 31)  # killed: still registered, no longer heard from
    other = BookQueue(redis, Settings(queue_name="other", worker_ttl=30))
    register(redis, other, 1)
    assert queue.worker_count() == 3
    assert queue.live_worker_count() == 2
    assert other.live_worker_count() == 1


def test_a_burst_worker_is_run_once_in_the_supervisor_s_place(redis_server, redis, tmp_path):
    env = {"PYTHONPATH": str(ROOT), "REDIS_URL": redis_server.url, "PATH": "/usr/bin:/bin"}
    finished = subprocess.run(
        [sys.executable, "-m", "worker.supervisor", "--burst"], cwd=ROOT, env=env, timeout=60, capture_output=True
    )
    assert finished.returncode == 0, finished.stdout[-2000:]
    assert b"rq worker exited" not in finished.stdout


def test_a_worker_leaves_its_command_channel_at_once(redis):
    """With redis-py 8.2, RQ's own unsubscribe waits for the channel's listener to end, and a
    listener that has already read the unsubscribe reply sleeps out RQ's 60 s poll waiting for
    a subscription: most stops and burst runs took a minute more (the Pipfile keeps redis
    below 8.2)."""
    worker = BookWorker(["books"], connection=redis)
    worker.subscribe()
    wait_until(lambda: worker.pubsub.subscribed, 5, message="the subscription")
    worker.pubsub.unsubscribe()  # the listener reads the reply first, as it mostly did
    wait_until(lambda: not worker.pubsub.subscribed, 5, message="the reply read")
    time.sleep(0.2)
    started = time.monotonic()
    worker.unsubscribe()
    assert time.monotonic() - started < 5
