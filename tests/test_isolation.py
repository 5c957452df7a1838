"""The tests do not depend on the developer's environment: a ``.env`` that ``pipenv run`` loads
(a dashboard user without a password, API tokens, a tight POST budget) changes no result."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.processes import ROOT

# A .env as a developer might keep one: each of these alone made in-process tests fail.
DEVELOPER_DOTENV = {
    "RQ_DASHBOARD_USERNAME": "operator",
    "API_TOKENS": "a-developer-token",
    "POST_BUDGET": "1",
    "FETCH_RATE": "0.1",
    "QUEUE_NAME": "developer-queue",
}


def test_the_fast_tests_pass_with_a_developers_dotenv_loaded():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_api.py", "-k", "readyz or post"],
        cwd=ROOT,
        env={**os.environ, **DEVELOPER_DOTENV},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout and "error" not in result.stdout
