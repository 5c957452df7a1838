"""A setting to fix stops the Procfile's processes at start with one line, not a traceback."""

from __future__ import annotations

import subprocess

import pytest

from tests.processes import ROOT, Service, procfile_command

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("process", ["web", "worker"])
@pytest.mark.parametrize(
    ("settings", "line"),
    [
        # A user name and an empty password, from the shell (no .env of the project holds this name)
        (
            {"RQ_DASHBOARD_USERNAME": "operator-from-the-shell", "RQ_DASHBOARD_PASSWORD": ""},
            "configuration error: set both RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD, or neither"
            " (RQ_DASHBOARD_USERNAME set in the environment)",
        ),
        (
            {"FETCH_RATE": "fast"},
            "configuration error: FETCH_RATE='fast' is not a valid float (FETCH_RATE set in the environment)",
        ),
        # JOB_TIMEOUT alone moves FETCH_WAIT_MAX's default with it; FETCH_WAIT_MAX set too is refused
        (
            {"JOB_TIMEOUT": "3", "FETCH_WAIT_MAX": "5", "FETCH_RATE": "1"},
            "configuration error: FETCH_WAIT_MAX must be 0 or more and at most a quarter of JOB_TIMEOUT"
            " (FETCH_WAIT_MAX, JOB_TIMEOUT set in the environment)",
        ),
    ],
    ids=["half-of-a-pair", "not-a-number", "fetch-wait-past-job-timeout"],
)
def test_a_setting_to_fix_stops_the_process_with_one_line(process, settings, line, tmp_path):
    # Nothing listens on port 9: the process must stop before it connects to anything.
    service = Service("redis://127.0.0.1:9/0", "http://127.0.0.1:9", tmp_path, **settings)
    result = subprocess.run(
        procfile_command(process), cwd=ROOT, env=service.env, capture_output=True, text=True, timeout=60
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert output.splitlines() == [line]
    assert "Traceback" not in output


def test_job_timeout_alone_starts_the_web_and_the_worker(make_service):
    """JOB_TIMEOUT=3 and nothing else: FETCH_WAIT_MAX, left unset, follows it (a quarter of it)."""
    service = make_service(JOB_TIMEOUT="3")  # waits for /healthz and the worker's registration
    assert service.web.poll() is None and all(worker.poll() is None for worker in service.workers)
