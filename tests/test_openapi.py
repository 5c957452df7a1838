"""Schemathesis against the running app's own OpenAPI document: no server errors, every answer
conforms to the document (status codes, content types, schemas)."""

from __future__ import annotations

import subprocess

import pytest
import requests

from tests.processes import BIN, ROOT

pytestmark = pytest.mark.e2e


def test_the_document_is_served(make_service):
    service = make_service(workers=0)
    document = requests.get(f"{service.url}/openapi.json", timeout=10).json()
    assert document["openapi"].startswith("3.1")
    assert {"/parseGoodreadsLinks", "/getBookInfo", "/healthz", "/readyz"} <= set(document["paths"])


def test_schemathesis_finds_nothing(make_service, tmp_path):
    service = make_service(workers=0)
    result = subprocess.run(
        [
            str(BIN / "st"),
            "--config-file",
            str(ROOT / "tests" / "schemathesis.toml"),
            "run",
            f"{service.url}/openapi.json",
            # Every check runs by default; naming them on the command line ("--checks all") would
            # override the per-operation switches of schemathesis.toml.
            "--max-examples",
            "60",
            "--seed",
            "1",
            "--no-color",
            "--suppress-health-check",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,
    )
    failures = result.stdout[result.stdout.find("FAILURES") :]
    assert result.returncode == 0, failures[:6000] + result.stderr[-2000:]
