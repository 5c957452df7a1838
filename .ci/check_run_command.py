"""The README's run command, run as a new user runs it: ``python3 .ci/check_run_command.py``.

CI installs the dev packages, which hide a default package that is missing from the lock (the
web process of the run command once died on a fresh machine for want of ``packaging``, which
only the dev packages brought). So this makes a fresh ``git clone`` of HEAD in a temporary
folder, takes the run command from README.md (the one line between ``<!-- run-command -->``
and ``<!-- /run-command -->``, so the README and this check cannot drift) and runs it there
verbatim: the default packages only, in the clone's own ``.venv``. It points the processes at
a redis-server of its own and at the sample origin (``python -m tests.origin``, standard
library only), checks that ``/healthz`` answers 200 and that one posted book is stored, and
stops every process it started. Standard library only: it runs before anything is installed.

Then the Dockerfile's install step: the locked default packages exported with ``pipenv
requirements`` and installed with ``pip install --no-deps --require-hashes`` into a bare venv
(no pipenv, nothing its own dependencies would bring), where every module the processes load
must import.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- run-command -->", "<!-- /run-command -->"
# The whole check, the packages' download included (about a minute with a warm pip cache).
DEADLINE = 240
BOOK = "https://www.goodreads.com/book/show/5907"
# What the Procfile's processes import, beyond the packages' own top-level modules.
SERVICE_MODULES = ["app", "app.gunicorn_worker", "worker.supervisor", "worker.rq_worker", "gunicorn.workers.ggevent"]


def run_command(readme: str) -> str:
    """The one command of the fenced block between the README's run-command markers."""
    if readme.count(START) != 1 or readme.count(END) != 1:
        raise SystemExit(f"README.md must hold {START} and {END} once each, around the run command")
    block = readme.split(START, 1)[1].split(END, 1)[0]
    lines = [line for line in block.strip().splitlines() if not line.startswith("```")]
    if len(lines) != 1 or not lines[0].strip():
        raise SystemExit(f"README.md's run command must be one line between {START} and {END}, not {lines!r}")
    return lines[0].strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bare_environment() -> dict[str, str]:
    """A new user's shell: no virtualenv on PATH, none of the service's settings, no pipenv state."""
    venv = os.environ.get("VIRTUAL_ENV")
    path = [part for part in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if part]
    if venv:
        path = [part for part in path if not part.startswith(venv)]
    path = [part for part in path if not part.endswith("/.venv/bin")]
    keep = {name: os.environ[name] for name in ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER") if name in os.environ}
    return {**keep, "PATH": os.pathsep.join(path)}


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"the run command ended (status {process.returncode}) before {what}")
        result = condition()
        if result:
            return result
        time.sleep(0.5)
    raise SystemExit(f"no {what} within {timeout:.0f} s")


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group; SIGKILL to what is left after 10 s (honcho itself
    SIGKILLs its processes 5 s after it is told to stop)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # children honcho left behind, if any
    process.wait(5)


def check_run_command(clone: Path, work: Path, env: dict[str, str], python3: str) -> None:
    command = run_command((clone / "README.md").read_text())
    redis_port, origin_port, web_port = free_port(), free_port(), free_port()
    started: list[subprocess.Popen] = []
    log = open(work / "run-command.log", "wb")  # noqa: SIM115 (the processes write to it until stopped)
    try:
        started.append(
            subprocess.Popen(
                [shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1"]
                + ["--save", "", "--appendonly", "no", "--dir", str(work)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        started.append(
            subprocess.Popen(
                [python3, "-m", "tests.origin", "--port", str(origin_port)],
                cwd=clone,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        service_env = {
            **env,
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "GOODREADS_BASE_URL": f"http://127.0.0.1:{origin_port}",
            "PORT": str(web_port),
        }
        print(f"$ {command}", flush=True)
        began = time.monotonic()
        service = subprocess.Popen(
            ["bash", "-c", command],
            cwd=clone,
            env=service_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(service)
        url = f"http://127.0.0.1:{web_port}"
        wait_for(lambda: http("GET", f"{url}/healthz")[0] == 200, DEADLINE, "/healthz answering 200", service)
        healthy_after = time.monotonic() - began
        status, body = http("POST", f"{url}/parseGoodreadsLinks", json.dumps([BOOK]).encode())
        if status != 202:
            raise SystemExit(f"POST /parseGoodreadsLinks answered {status}: {body[:300]!r}")

        def stored() -> bool:
            status, body = http("GET", f"{url}/getBookInfo?url={BOOK}")
            return status == 200 and bool(json.loads(body).get("title"))

        wait_for(stored, 30, "stored book", service)
        print(
            f"run command: /healthz 200 after {healthy_after:.0f} s (install included), "
            f"one book stored {time.monotonic() - began - healthy_after:.1f} s after its POST"
        )
    except SystemExit:
        log.flush()
        print((work / "run-command.log").read_text(errors="replace")[-6000:], file=sys.stderr)
        raise
    finally:
        for process in reversed(started):
            stop(process)
        log.close()


def check_image_install(clone: Path, work: Path, env: dict[str, str], python3: str) -> None:
    """The Dockerfile's install step in a bare venv: only the locked default packages."""
    requirements = work / "requirements.txt"
    exported = subprocess.run(
        [python3, "-m", "pipenv", "requirements", "--hash"], cwd=clone, env=env, capture_output=True, text=True
    )
    if exported.returncode != 0:
        raise SystemExit(f"pipenv requirements failed: {exported.stderr}")
    requirements.write_text(exported.stdout)
    venv = work / "image-venv"
    subprocess.run([python3, "-m", "venv", str(venv)], check=True, env=env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", "--require-hashes", "-r", str(requirements)], check=True, env=env)
    # Every distribution's top-level modules, and the service's own modules, import.
    probe = (
        "import importlib, importlib.metadata as m, sys\n"
        "names = sorted(top for top in m.packages_distributions()"
        " if top.isidentifier() and not top.startswith('_') and top not in ('pip', 'setuptools', 'pkg_resources'))\n"
        "for name in names + sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "print(len(names), 'packages and', len(sys.argv) - 1, 'service modules import')\n"
    )
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe, *SERVICE_MODULES],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"the image's install step leaves a module unimportable:\n{result.stderr[-3000:]}")
    print(f"image install step: {result.stdout.strip()}")


def main() -> int:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True)
    env = bare_environment()
    python3 = shutil.which("python3", path=env["PATH"]) or "python3"
    with tempfile.TemporaryDirectory(prefix="run-command-") as folder:
        work = Path(folder)
        clone = work / "clone"
        subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "checkout", "--quiet", head.stdout.strip()], cwd=clone, check=True)
        check_run_command(clone, work, env, python3)
        check_image_install(clone, work, env, python3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
