"""The page parser on the project's own fixtures: one per layout, structure and pitfall."""

import json
from pathlib import Path

import pytest
from jsonschema_rs import Draft202012Validator

from books.export import csv_value
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
        "original_title": "The Long Way Home: A Tale",  # the Work's, spaces collapsed
        "series": "Wanderers #1.1",  # the first series only, decimal position kept
        "series_list": [
            {"name": "Wanderers", "position": "1.1", "series_id": "1"},  # the id from the series' link
            {"name": "Wanderers Universe", "position": "7", "series_id": None},  # no link, no id
        ],
        "author": "Ann Writer",  # repeated spaces collapsed
        "authors": ["Ann Writer", "Tom Translator", "Ida Illustrator"],
        "contributors": [
            {"name": "Ann Writer", "role": "Author"},
            {"name": "Tom Translator", "role": "Translator"},
            {"name": "Ida Illustrator", "role": "Illustrator"},
        ],
        "rating": 4.12,
        "ratings_count": 12345,
        # apollo lists the counts from one star up: [400, 600, 1845, 3800, 5700]
        "rating_distribution": {"5": 5700, "4": 3800, "3": 1845, "2": 600, "1": 400},
        "reviews_count": 678,
        "description": 'First line & more\nsecond line\n\nSecond paragraph \u2014 with "quotes".',
        "isbn": "1234567890",
        "isbn13": "9781234567897",
        "asin": "B000000000",
        "pages": 352,
        "format": "Hardcover",
        "language": "English",
        "publisher": "Example Press",
        "published": None,  # the page shows only "First published"
        "published_date": "2010-01-01",
        "first_published": "March 3, 1999",  # the <!-- --> marker is not part of the text
        "first_published_date": "1999-03-03",
        "work_id": "31337",
        "editions_count": 17,
        "genres": ["Fantasy", "Historical Fiction", "Audiobook"],
        "characters": ["Wanda Walker", "Old Tom"],  # the nameless one left out
        "places": ["Lisbon", "The Sea"],
        "awards": [
            # awardedAt 2001-01-01 08:00 UTC (midnight in California): its UTC year
            {"name": "Hugo Award", "category": "Best Novel", "year": 2001, "outcome": "won"},
            {"name": "Locus Award", "category": None, "year": 2002, "outcome": "nominated"},
            # a 2022-era entry, hasWon instead of a designation; no date, no year
            {"name": "Odd Prize", "category": "Long Books", "year": None, "outcome": "nominated"},
        ],  # the nameless award left out
        "cover_url": "https://images.example/covers/4242.jpg",
    }


def test_current_layout_without_the_new_values_gives_null_and_empty_lists():
    record = parse("next_apollo_sparse.html")
    assert record["book_id"] == "5150"
    assert record["original_title"] is None
    assert (record["series"], record["series_list"]) == (None, [])  # a series without a title is no series
    assert record["rating_distribution"] is None  # two counts are not a distribution of five
    assert record["ratings_count"] == 3
    assert (record["asin"], record["work_id"], record["editions_count"]) == (None, None, None)
    assert (record["characters"], record["places"], record["awards"]) == ([], [], [])


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
    # the title section's series link: only the first series is shown there
    assert record["series"] == "Thoughts #2.5"
    assert record["series_list"] == [{"name": "Thoughts", "position": "2.5", "series_id": "606"}]
    # the histogram's "6 (30%)" labels, five stars first
    assert record["rating_distribution"] == {"5": 6, "4": 5, "3": 4, "2": 3, "1": 2}
    assert sum(record["rating_distribution"].values()) == record["ratings_count"]
    # JSON-LD and the markup carry none of these
    assert record["original_title"] is None
    assert (record["asin"], record["work_id"], record["editions_count"]) == (None, None, None)
    assert (record["characters"], record["places"], record["awards"]) == ([], [], [])


def test_markup_fallback_without_a_whole_histogram_or_series_link_gives_null():
    page = (FIXTURES / "next_markup_only.html").read_text()
    page = page.replace('<div data-testid="labelTotal-1">2 (10%)</div>', "").replace("/series/606-thoughts", "/x")
    record = parse_book_page(page.encode(), "77")
    assert record["rating_distribution"] is None
    assert (record["series"], record["series_list"]) == (None, [])  # a heading link elsewhere is no series


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


def test_legacy_layout_reads_the_data_box_and_rating_graph():
    record = parse("legacy.html", "31")
    assert record["original_title"] == "The Old House"
    assert record["series"] == "Houses #2"  # the heading's series
    assert record["series_list"] == [  # the data box's: every series shown, not its "more" link
        {"name": "Houses", "position": "2", "series_id": "9"},
        {"name": "Gothic Tales", "position": None, "series_id": "10"},
    ]
    assert record["characters"] == ["Ada", "The Ghost", "Bram"]  # hidden ones too, not "...more"
    assert record["places"] == ["Yorkshire", "The Moors"]  # names only, not the country
    assert record["awards"] == [
        # a winner's " for " splits where the award's link names the award
        {"name": "Hugo Award", "category": "Best Novel", "year": 1955, "outcome": "won"},
        {"name": "Locus Award", "category": "Best Fantasy Novel", "year": 1956, "outcome": "nominated"},
        {"name": "Andre Norton Award", "category": None, "year": 1957, "outcome": "nominated"},
        {"name": "Prize for Gothic Fiction", "category": "Short Novels", "year": 1958, "outcome": "won"},
        # no link naming the award: the whole text, unsplit; no year shown
        {"name": "Book of the Year for Readers", "category": None, "year": None, "outcome": "won"},
    ]
    # renderRatingGraph lists five stars first
    assert record["rating_distribution"] == {"5": 405, "4": 430, "3": 255, "2": 70, "1": 40}
    assert sum(record["rating_distribution"].values()) == record["ratings_count"]
    assert (record["work_id"], record["editions_count"]) == ("700", 1204)  # "Other Editions (1,204)"
    assert record["asin"] is None  # no ASIN row: the ISBN-10 is not taken for one


def test_legacy_layout_without_series_isbn_or_first_publication():
    record = parse("legacy_kindle.html")
    assert record["book_id"] == "888"  # from the hidden book_id input
    assert record["series"] is None  # h2#bookSeries present but empty
    assert record["description"] == "Only one short span."
    assert (record["isbn"], record["isbn13"]) == (None, None)  # an ASIN is not an ISBN
    assert (record["published"], record["first_published"]) == ("March 1st 2012", None)
    assert record["genres"] == []
    assert record["cover_url"] is None
    assert record["asin"] == "B0075ABCDE"  # the data box's ASIN row
    assert (record["original_title"], record["rating_distribution"]) == (None, None)
    assert (record["series_list"], record["characters"], record["places"], record["awards"]) == ([], [], [], [])
    assert (record["work_id"], record["editions_count"]) == (None, None)


LAYOUT_FIXTURES = [
    "next_apollo.html",
    "next_apollo_sparse.html",
    "next_markup_only.html",
    "legacy.html",
    "legacy_kindle.html",
]


@pytest.mark.parametrize("name", LAYOUT_FIXTURES)
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


ODD_PRIZE = '{"__typename":"Award","name":"Odd Prize","awardedAt":null,"category":"Long Books","hasWon":false}'


@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        ('"designation":"WINNER"', "won"),
        ('"designation":"NOMINEE"', "nominated"),
        ('"hasWon":true', "won"),  # 2022-era pages
        ('"hasWon":false', "nominated"),
        ('"designation":null,"hasWon":true', "won"),
        ('"designation":"WINNER","hasWon":false', "won"),  # the designation, where a page gives both
        ('"designation":"SHORTLIST"', None),  # neither way: not guessed
        ('"hasWon":1', None),
        ('"category":null', None),
    ],
)
def test_an_awards_outcome_is_won_or_nominated_from_its_designation_or_has_won(fields, outcome):
    page = (FIXTURES / "next_apollo.html").read_text()
    assert ODD_PRIZE in page
    page = page.replace(ODD_PRIZE, '{"__typename":"Award","name":"Odd Prize",' + fields + "}")
    record = parse_book_page(page.encode(), "4242")
    assert not isinstance(record, NotABookPage)
    assert [award["outcome"] for award in record["awards"]] == ["won", "nominated", outcome]


def test_the_new_fields_export_as_readable_csv_cells():
    record = parse("next_apollo.html", "4242")
    assert csv_value(record["series_list"]) == "Wanderers #1.1 (series 1); Wanderers Universe #7"
    assert csv_value(record["awards"]) == (
        "Hugo Award for Best Novel (2001, won); Locus Award (2002, nominated); Odd Prize for Long Books (nominated)"
    )
    assert csv_value(record["rating_distribution"]) == "5: 5700; 4: 3800; 3: 1845; 2: 600; 1: 400"
    assert csv_value(record["characters"]) == "Wanda Walker; Old Tom"
    assert csv_value(parse("next_apollo_sparse.html")["rating_distribution"]) == ""


RECORD_SCHEMA = json.loads((Path(__file__).parents[1] / "app" / "openapi.json").read_text())["components"]["schemas"][
    "Record"
]


@pytest.mark.parametrize("name", LAYOUT_FIXTURES)
def test_a_record_matches_the_documented_record_schema(name):
    record = {**parse(name, "1"), "fetched_at": "2026-01-01T00:00:00+00:00", "source": "goodreads"}
    Draft202012Validator(RECORD_SCHEMA).validate(record)
