"""Every real page in ../shared/goodreads-pages/ against the values a careful reader took from it."""

import json
import re
from pathlib import Path

import pytest

from worker.parser import NotABookPage, parse_book_page

SHARED = Path(__file__).resolve().parents[2] / "shared" / "goodreads-pages"
PAGES = sorted((SHARED / "pages").glob("*.html")) if SHARED.is_dir() else []

pytestmark = pytest.mark.skipif(not PAGES, reason=f"no shared Goodreads pages at {SHARED}")

# expected/*.json key → record key, where the names differ.
RENAMED = {"average_rating": "rating"}
COMPARED = [
    "book_id",
    "title",
    "series",
    "authors",
    "average_rating",
    "ratings_count",
    "reviews_count",
    "isbn",
    "isbn13",
    "pages",
    "language",
    "cover_url",
    "first_published",
    "published",
    "genres",
]


def _expected(page: Path) -> dict:
    return json.loads((SHARED / "expected" / f"{page.stem}.json").read_text())


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_every_expected_field(page: Path) -> None:
    expected = _expected(page)
    result = parse_book_page(page.read_bytes())
    if expected["page_type"] != "book":
        assert isinstance(result, NotABookPage)
        assert result.kind == expected["page_type"]
        return
    assert not isinstance(result, NotABookPage), result
    mismatches = {
        key: (result[RENAMED.get(key, key)], expected[key])
        for key in COMPARED
        if result[RENAMED.get(key, key)] != expected[key]
    }
    assert [c["role"] for c in result["contributors"]] == expected["contributor_roles"]
    description = " ".join((result["description"] or "").split()) or None
    start = description[:60].rstrip() if description else None
    want = expected["description_start"].rstrip() if expected["description_start"] else None
    if start != want:
        mismatches["description_start"] = (start, want)
    assert not mismatches


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_description_keeps_paragraphs_and_has_no_markup(page: Path) -> None:
    result = parse_book_page(page.read_bytes())
    if isinstance(result, NotABookPage) or not result["description"]:
        return
    assert not re.search(r"<[a-z/][^>]*>|&[a-z]+;|  ", result["description"])
