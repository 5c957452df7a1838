"""Real processes for tests and benchmarks: a redis-server of their own, and the
Procfile's own web and worker commands pointed at it and at a local origin."""

from __future__ import annotations

import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from redis import Redis

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


# Ports for the tests' servers, below the kernel's ephemeral range: a port the kernel picks
# from that range (bind to port 0) may be taken by an outgoing connection before the server
# binds it, as it was under the e2e layer's tens of thousands of requests.
LOWEST_TEST_PORT = 20_000


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port() -> int:
    """A port free now, below the ephemeral range, picked at random (so the two test processes
    of ``-n 2`` hardly ever pick the same one)."""
    for _ in range(200):
        port = random.randrange(LOWEST_TEST_PORT, max(LOWEST_TEST_PORT + 1000, _ephemeral_low()))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def running(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(condition, timeout: float, interval: float = 0.05, message: str = "condition"):
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class RedisServer:
    """A redis-server on a free port with its own data folder, which can be restarted."""

    def __init__(self, appendonly: bool = False, options: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="redis-test-"))
        self.appendonly = appendonly
        self.options = options  # more redis-server options, e.g. ("--replicaof", host, port)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            *self.options,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = Redis(port=self.port, socket_connect_timeout=0.2)
        wait_until(lambda: _pings(client), 10, message="redis-server to start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelGroup:
    """Redis with Sentinel on 127.0.0.1: a master, one replica, and one sentinel watching them
    (quorum 1), each a redis-server on a free port."""

    MASTER_NAME = "books"

    def __init__(self) -> None:
        self.master = RedisServer()
        self.replica = RedisServer(options=("--replicaof", "127.0.0.1", str(self.master.port)))
        self.sentinel_port = free_port()
        self.sentinel_process: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        """The service's settings for this Sentinel (REDIS_URL keeps the database: 0)."""
        return {"REDIS_SENTINELS": f"127.0.0.1:{self.sentinel_port}", "REDIS_SENTINEL_MASTER": self.MASTER_NAME}

    @property
    def sentinel(self) -> Redis:
        return Redis(port=self.sentinel_port, socket_timeout=2, decode_responses=True)

    def start(self) -> None:
        self.master.start()
        self.replica.start()
        config = self.master.dir / "sentinel.conf"  # Sentinel rewrites its file: one of its own
        config.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.master.dir}\n"
            f"sentinel monitor {self.MASTER_NAME} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.MASTER_NAME} 2000\n"
            f"sentinel failover-timeout {self.MASTER_NAME} 20000\n"
        )
        self.sentinel_process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", str(config), "--sentinel"],
            stdout=open(self.master.dir / "sentinel.log", "ab"),  # noqa: SIM115 (kept open for the child)
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: _pings(self.sentinel), 10, message="the sentinel to start")
        wait_until(self._ready_for_failover, 30, 0.2, message="the replica in sync and known to the sentinel")

    def _ready_for_failover(self) -> bool:
        link = Redis(port=self.replica.port).info("replication").get("master_link_status")
        return link == "up" and bool(self.sentinel.execute_command("SENTINEL", "REPLICAS", self.MASTER_NAME))

    def master_port(self) -> int:
        """The port of the master the sentinel names now."""
        return int(self.sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER_NAME)[1])

    def failover(self) -> float:
        """``SENTINEL FAILOVER``; returns (``time.monotonic()``) once the sentinel names the new master."""
        old = self.master_port()
        self.sentinel.execute_command("SENTINEL", "FAILOVER", self.MASTER_NAME)
        wait_until(lambda: self.master_port() != old, 30, 0.05, message="the sentinel to name a new master")
        return time.monotonic()

    def log(self) -> str:
        return (self.master.dir / "sentinel.log").read_text(errors="replace")

    def cleanup(self) -> None:
        if self.sentinel_process and self.sentinel_process.poll() is None:
            self.sentinel_process.terminate()
            self.sentinel_process.wait(10)
        self.replica.cleanup()
        self.master.cleanup()


def _pings(client: Redis) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def stop_group(process: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM to the process's group (a process started with ``start_new_session``: honcho and
    everything it runs; honcho itself SIGKILLs its processes 5 s after); SIGKILL to what is left
    after ``grace`` seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


class Honcho:
    """A command that runs the Procfile under honcho (``honcho start …``, or the demo's ``python
    -m tests.origin … honcho start``) as a user would, in its own process group, pointed at a
    test Redis on a free PORT; ``with`` it to stop it all."""

    def __init__(self, command: list[str], redis_url: str, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "REDIS_URL": redis_url,
            "PORT": str(self.port),
        }
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115 (honcho writes to it until stopped)
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_for_web(self, timeout: float = 60) -> None:
        """Until the web process answers ``/healthz``; fails at once if honcho stops."""
        wait_until(self._web_answers, timeout, 0.2, message="the web process under honcho")

    def _web_answers(self) -> bool:
        assert self.process.poll() is None, f"honcho stopped: {self.log_path.read_text(errors='replace')[-3000:]}"
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def __enter__(self) -> Honcho:
        return self

    def __exit__(self, *_exc: object) -> None:
        stop_group(self.process)
        self.log.close()


def tree_rss_kb(pid: int, field: str = "VmRSS") -> dict[int, int]:
    """Memory of a process and each of its descendants, in kB by pid: resident now (VmRSS)
    or at its peak (VmHWM)."""
    memory, pending = {}, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            memory[current] = int(next(line.split()[1] for line in status.splitlines() if line.startswith(f"{field}:")))
            pending += [int(child) for child in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except (OSError, StopIteration):
            pass  # a process that just ended
    return memory


def tree_rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Memory of a process and all its descendants, in MB."""
    return sum(tree_rss_kb(pid, field).values()) / 1024


@contextmanager
def web_alone(**settings: str) -> Iterator[tuple[Service, Redis]]:
    """A redis-server of its own and the Procfile's web command against it, with no worker and no
    origin, so every job stays queued: what the enqueue benchmarks time."""
    redis_server = RedisServer()
    redis_server.start()
    logs = tempfile.TemporaryDirectory()
    service = Service(redis_server.url, "http://127.0.0.1:9", Path(logs.name), **settings)
    try:
        service.start_web()
        yield service, Redis(port=redis_server.port)
    finally:
        service.stop()
        redis_server.cleanup()
        logs.cleanup()


def procfile_command(name: str) -> list[str]:
    """The command the Procfile (and so honcho and docker-compose) runs for a process type."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        kind, _, command = line.partition(":")
        if kind.strip() == name:
            return shlex.split(command)
    raise KeyError(name)


class Service:
    """The Procfile's web and worker processes, pointed at a test Redis and origin."""

    def __init__(self, redis_url: str, origin_url: str, log_dir: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "PORT": str(self.port),
            "REDIS_URL": redis_url,
            "GOODREADS_BASE_URL": origin_url,
            "FETCH_RATE": "0",
            "RETRY_MAX": "2",
            "RETRY_INTERVALS": "1,1",
            "FETCH_READ_TIMEOUT": "2",
            "FALLBACK_SOURCE": "none",  # no real Open Library: the tests that want one name their fake
            **settings,
        }
        self.web: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    def start_web(self, app: str | None = None) -> None:
        """The Procfile's web command; benchmarks may serve another app with the same gunicorn settings."""
        self.web = self.spawn([*procfile_command("web"), *([app] if app else [])], "web")
        wait_until(self._web_answers, 30, message="gunicorn to answer")

    def start_worker(self) -> subprocess.Popen:
        return self.start_workers(1)[0]

    def start_workers(self, count: int) -> list[subprocess.Popen]:
        """All at once, then one wait for them all: a dozen workers started one by one, each
        waiting for the one before to register, took about 19 s to be ready; all at once, 6 s."""
        started = [self.spawn(procfile_command("worker"), f"worker-{len(self.workers) + n}") for n in range(count)]
        self.workers.extend(started)
        redis = Redis.from_url(self.env["REDIS_URL"])
        from rq import Worker

        wait_until(lambda: Worker.count(connection=redis) >= len(self.workers), 30, message="the rq workers")
        return started

    def spawn(self, command: list[str], name: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (kept open for the child)
        return subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _web_answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def logs(self, tail: int = 0) -> str:
        """Everything the processes printed (the last ``tail`` characters of each, if given)."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )

    def stop(self) -> None:
        for process in [self.web, *self.workers]:
            if process and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [self.web, *self.workers]:
            if process:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(5)
