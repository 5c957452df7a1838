"""The page parser on the project's own fixtures: one per layout, structure and pitfall."""

from pathlib import Path

import pytest

from books.record import PAGE_FIELDS
from worker.parser import NotABookPage, html_to_text, parse_book_page

FIXTURES = Path(__file__).parent / "fixtures"


def parse(name: str, requested_id: str | None = None):
    return parse_book_page((FIXTURES / name).read_bytes(), requested_id)


def test_current_layout_reads_every_field_from_apollo_state():
    record = parse("next_apollo.html", "4242")
    assert record == {
        "book_id": "4242",  # the page's own book, not the canonical link's edition
        "url": "https://www.goodreads.com/book/show/4242",
        "title": "The Long Way Home",  # without the "(Wanderers #1.1)" suffix of JSON-LD
        "series": "Wanderers #1.1",  # the first series only, decimal position kept
        "author": "Ann Writer",  # repeated spaces collapsed
        "authors": ["Ann Writer", "Tom Translator", "Ida Illustrator"],
        "contributors": [
            {"name": "Ann Writer", "role": "Author"},
            {"name": "Tom Translator", "role": "Translator"},
            {"name": "Ida Illustrator", "role": "Illustrator"},
        ],
        "rating": 4.12,
        "ratings_count": 12345,
        "reviews_count": 678,
        "description": 'First line & more\nsecond line\n\nSecond paragraph \u2014 with "quotes".',
        "isbn": "1234567890",
        "isbn13": "9781234567897",
        "pages": 352,
        "format": "Hardcover",
        "language": "English",
        "publisher": "Example Press",
        "published": None,  # the page shows only "First published"
        "published_date": "2010-01-01",
        "first_published": "March 3, 1999",  # the <!-- --> marker is not part of the text
        "first_published_date": "1999-03-03",
        "genres": ["Fantasy", "Historical Fiction", "Audiobook"],
        "cover_url": "https://images.example/covers/4242.jpg",
    }


def test_current_layout_with_empty_apollo_state_falls_back_to_json_ld_and_markup():
    record = parse("next_markup_only.html", "77")
    assert record["book_id"] == "77"  # no id in the page's data: the requested one
    assert record["title"] == "Kindle Thoughts"
    assert record["authors"] == ["Bo Author", "O'Brien Second"]  # entity decoded, spaces collapsed
    assert record["author"] == "Bo Author"
    assert (record["rating"], record["ratings_count"], record["reviews_count"]) == (3.5, 20, 3)
    assert record["description"] == "Rock & roll\non the moon."
    assert (record["isbn"], record["isbn13"]) == (None, None)  # Kindle: no ISBN
    assert (record["pages"], record["format"], record["language"]) == (120, "Kindle Edition", "Finnish")
    assert (record["published"], record["first_published"]) == ("May 5, 2015", None)
    assert record["genres"] == ["Poetry", "Nonfiction"]
    assert record["cover_url"] == "https://images.example/covers/77.jpg"


def test_legacy_layout_reads_every_field_from_the_markup():
    record = parse("legacy.html", "31")
    assert record["book_id"] == "555"  # the displayed edition, not the canonical link's
    assert record["title"] == "The Old House"
    assert record["series"] == "Houses #2"
    assert record["authors"] == ["Cee Author", "Dee Translator", "Eve Foreword"]
    assert [c["role"] for c in record["contributors"]] == ["Author", "translator", "Foreword"]
    assert record["author"] == "Cee Author"
    assert (record["rating"], record["ratings_count"], record["reviews_count"]) == (3.91, 1200, 45)
    # the hidden full text, not the truncated span nor a review's hidden span elsewhere
    assert record["description"] == "A house & its\n\nghosts, in full.\nThe end."
    assert (record["isbn"], record["isbn13"]) == ("061834625X", "9780618346257")
    assert (record["pages"], record["format"], record["language"]) == (1024, "Paperback", "English")
    assert record["publisher"] == "House Press"
    assert (record["published"], record["first_published"]) == ("September 5th 2003", "July 29th 1954")
    assert record["genres"] == ["Horror", "Fiction > Gothic"]
    assert record["cover_url"] == "https://images.example/covers/555l.jpg"


def test_legacy_layout_without_series_isbn_or_first_publication():
    record = parse("legacy_kindle.html")
    assert record["book_id"] == "888"  # from the hidden book_id input
    assert record["series"] is None  # h2#bookSeries present but empty
    assert record["description"] == "Only one short span."
    assert (record["isbn"], record["isbn13"]) == (None, None)  # an ASIN is not an ISBN
    assert (record["published"], record["first_published"]) == ("March 1st 2012", None)
    assert record["genres"] == []
    assert record["cover_url"] is None


@pytest.mark.parametrize("name", ["next_apollo.html", "next_markup_only.html", "legacy.html", "legacy_kindle.html"])
def test_a_record_has_every_field_and_no_empty_strings(name):
    record = parse(name, "1")
    assert list(record) == list(PAGE_FIELDS)
    assert "" not in record.values()


@pytest.mark.parametrize(
    ("page", "kind"),
    [
        ((FIXTURES / "signin_wall.html").read_bytes(), "sign_in_wall"),
        ((FIXTURES / "amazon_signin.html").read_bytes(), "sign_in_wall"),
        ((FIXTURES / "no_book_data.html").read_bytes(), "no_book_data"),
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"<html><body>cut off in the mid", "incomplete"),
        ((FIXTURES / "next_apollo.html").read_bytes()[:3000], "incomplete"),  # JSON-LD complete, data cut off
        ((FIXTURES / "legacy.html").read_bytes()[:-2000], "incomplete"),
        (b'<html><script id="__NEXT_DATA__" type="application/json">{"props": </script></html>', "no_book_data"),
        (b"\xff\xfe\x00garbage</html>", "no_book_data"),
    ],
)
def test_pages_without_a_book_are_reported_as_such(page, kind):
    result = parse_book_page(page, "1")
    assert isinstance(result, NotABookPage)
    assert result.kind == kind


def test_html_to_text():
    assert html_to_text("a<br>b<br/><br />c &amp; d") == "a\nb\n\nc & d"
    assert html_to_text("<p>one   two</p><p>three</p>") == "one two\n\nthree"
    assert html_to_text("  ") is None
    assert html_to_text(None) is None


def test_data_scripts_are_found_by_their_tag_not_by_the_text_mentioning_them():
    page = (FIXTURES / "next_apollo.html").read_text()
    decoys = (
        '<div data-note=\'id="__NEXT_DATA__"\'>id="__NEXT_DATA__" data-testid="publicationInfo"</div>'
        '<pre>type="application/ld+json"</pre>'
    )
    page = page.replace("<body>", "<body>" + decoys, 1).replace("</html>", "</HTML >")
    assert "<body>" + decoys in page
    assert parse_book_page(page.encode(), "4242") == parse("next_apollo.html", "4242")
