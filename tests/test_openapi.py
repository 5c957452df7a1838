"""Schemathesis against the running app's own OpenAPI document: no server errors, every answer
conforms to the document (status codes, content types, schemas). In process: the document's
link pattern accepts exactly the links the parser accepts."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from books.links import LINK_PATTERN, MAX_LINK_LENGTH, parse_link
from tests.processes import BIN, ROOT
from tests.test_links import ACCEPTED, REFUSED

DOCUMENT = json.loads((ROOT / "app" / "openapi.json").read_text())
LINK = re.compile(LINK_PATTERN)


def test_the_documents_link_patterns_are_the_parsers():
    post = DOCUMENT["paths"]["/parseGoodreadsLinks"]["post"]["requestBody"]["content"]["application/json"]
    lookup = next(p for p in DOCUMENT["paths"]["/getBookInfo"]["get"]["parameters"] if p["name"] == "url")
    assert post["schema"]["items"]["pattern"] == lookup["schema"]["pattern"] == LINK_PATTERN


@pytest.mark.parametrize("link", [*ACCEPTED, *(link for link, _reason in REFUSED if isinstance(link, str))])
def test_the_pattern_matches_a_link_exactly_when_the_parser_accepts_it(link):
    described = bool(LINK.search(link)) and len(link) <= MAX_LINK_LENGTH  # the pattern and maxLength
    assert described == isinstance(parse_link(link), str)


@given(st.from_regex(LINK, fullmatch=True).filter(lambda link: len(link) <= MAX_LINK_LENGTH))
def test_every_link_the_pattern_describes_is_accepted(link):
    assert isinstance(parse_link(link), str), link


@given(
    st.lists(
        st.sampled_from(
            [
                "https://",
                "HTTP://",
                "www.",
                "m.",
                "goodreads.com",
                "GoodReads.COM",
                "/en",
                "/zh-TW",
                "/book/show/",
                "0",
                "5907",
                "1234567890123",
                ".",
                "-",
                "_",
                "slug",
                "/",
                "?",
                "#",
                "a=b",
                ":80",
                "@",
                " ",
                "\\",
                "é",
            ]
        ),
        max_size=12,
    ).map("".join)
)
def test_the_pattern_and_the_parser_agree_on_any_mix_of_link_parts(link):
    assert bool(LINK.search(link)) == isinstance(parse_link(link), str), link


@pytest.mark.e2e
def test_the_document_is_served(make_service):
    service = make_service(workers=0)
    document = requests.get(f"{service.url}/openapi.json", timeout=10).json()
    assert document["openapi"].startswith("3.1")
    assert {"/parseGoodreadsLinks", "/getBookInfo", "/healthz", "/readyz"} <= set(document["paths"])


@pytest.mark.e2e
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
