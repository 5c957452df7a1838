"""A setting to fix stops the Procfile's processes at start with one line, not a traceback."""

from __future__ import annotations

import subprocess

import pytest

from tests.processes import ROOT, Service, procfile_command

pytestmark = pytest.mark.e2e

HINT = " (honcho and docker compose read .env)"


@pytest.mark.parametrize("process", ["web", "worker"])
@pytest.mark.parametrize(
    ("settings", "line"),
    [
        # .env.example copied as it is: the password left empty
        (
            {"RQ_DASHBOARD_USERNAME": "operator", "RQ_DASHBOARD_PASSWORD": ""},
            "configuration error: set both RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD, or neither" + HINT,
        ),
        ({"FETCH_RATE": "fast"}, "configuration error: FETCH_RATE='fast' is not a valid float" + HINT),
    ],
    ids=["half-of-a-pair", "not-a-number"],
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
