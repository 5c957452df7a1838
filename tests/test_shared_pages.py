"""Every real page in ../shared/goodreads-pages/ against the values a careful reader took from it."""

import json
import re
from pathlib import Path

import pytest
from jsonschema_rs import Draft202012Validator

from tests.origin import WAF_SCRIPT, with_waf_script
from tests.test_parser import RECORD_SCHEMA
from worker.fetch import OriginResponse, origin_trouble
from worker.parser import NotABookPage, has_book_data, parse_book_page

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


def _series(name: str, position: str | None, series_id: str) -> dict:
    return {"name": name, "position": position, "series_id": series_id}


def _award(name: str, category: str | None, year: int, outcome: str) -> dict:
    return {"name": name, "category": category, "year": year, "outcome": outcome}


# expected/*.json does not list these fields: the values below were read from each page by
# hand. Next pages: apolloState's Work (details.originalTitle, awardsWon, characters, places;
# stats.ratingsCountDist, from one star up, as the page's histogram labels confirm; legacyId)
# and Book (details.asin, bookSeries → Series.title/webUrl); they carry no editions count.
# Legacy pages: the book data box rows (Original Title, Series, Characters, Setting, Literary
# Awards, "Other Editions (N)" and its /work/editions/<id> link) and renderRatingGraph([5★..1★]).
NEW_FIELDS: dict[str, dict] = {
    "legacy-10838911": {
        "original_title": None,
        "series_list": [  # the data box shows three series, then a "more" link to the rest
            _series("The Horus Heresy", "18", "40983"),
            _series("Warhammer 40,000", None, "55447"),
            _series("The Horus Heresy - Black Library recommended reading order", "18", "204279"),
        ],
        "rating_distribution": {"5": 777, "4": 1237, "3": 861, "2": 170, "1": 23},
        "asin": None,
        "work_id": "15753131",
        "editions_count": 17,
        "characters": [],
        "places": [],
        "awards": [],
    },
    "legacy-12813630": {
        "original_title": "The Coldest Girl in Coldtown",
        "series_list": [],
        "rating_distribution": {"5": 18882, "4": 21487, "3": 13547, "2": 4533, "1": 2048},
        "asin": None,
        "work_id": "17962903",
        "editions_count": 40,
        "characters": ["Tana", "Aiden", "Gavriel"],
        "places": [],
        "awards": [
            _award("Locus Award", "Young Adult Science Fiction and Fantasy", 2014, "nominated"),
            _award("Pennsylvania Young Readers' Choice Award", "Young Adults", 2015, "nominated"),
            _award("Milwaukee County Teen Book Award", None, 2015, "nominated"),
            _award("Andre Norton Award", None, 2013, "nominated"),
            _award("Green Mountain Book Award", None, 2015, "nominated"),
        ],
    },
    "legacy-34": {
        "original_title": "The Lord of the Rings: The Fellowship of the Ring",
        "series_list": [_series("The Lord of the Rings", "1", "66175")],
        "rating_distribution": {"5": 1520123, "4": 663969, "3": 261139, "2": 71578, "1": 50172},
        "asin": None,
        "work_id": "3204327",
        "editions_count": 745,
        "characters": [  # the first five shown, the rest behind "...more"
            "Frodo Baggins",
            "Meriadoc Brandybuck",
            "Peregrin Took",
            "Gandalf",
            "Aragorn",
            "Gimli",
            "Boromir",
            "Bilbo Baggins",
            "Tom Bombadil",
            "Rúmil",
            "Saruman",
            "Elrond Half-elven",
            "Arwen Undómiel",
            "Galadriel",
            "Gollum",
            "Goldberry",
            "Legolas",
            "Sam Gamgee",
        ],  # fmt: skip
        "places": ["Middle-earth"],
        "awards": [_award("Publieksprijs voor het Nederlandse Boek", None, 2002, "nominated")],
    },
    "legacy-49852": {
        "original_title": "Harry Potter and the Half-Blood Prince",
        "series_list": [_series("Harry Potter", "6", "45175")],
        "rating_distribution": {"5": 1922697, "4": 669280, "3": 190898, "2": 31380, "1": 14543},
        "asin": None,
        "work_id": "41335427",
        "editions_count": 163,
        "characters": [
            "Ron Weasley",
            "Petunia Dursley",
            "Vernon Dursley",
            "Dudley Dursley",
            "Severus Snape",
            "Lord Voldemort",
            "Neville Longbottom",
            "Fred Weasley",
            "George Weasley",
            "Ginny Weasley",
            "Arthur Weasley",
            "Molly Weasley",
            "Cornelius Fudge",
            "Peter Pettigrew",
            "Fleur Delacour",
            "Bellatrix Lestrange",
            "Bill Weasley",
            "Luna Lovegood",
            "Nymphadora Tonks",
            "Kreacher",
            "Narcissa Malfoy",
            "Horace Slughorn",
            "Draco Malfoy",
            "Albus Dumbledore",
            "Harry Potter",
            "Hermione Granger",
            "Madam Malkin",
            "Romilda Vane",
        ],  # fmt: skip
        "places": ["Hogwarts School of Witchcraft and Wizardry", "England"],  # not the "(United Kingdom)" note
        "awards": [
            _award("Locus Award", "Best Young Adult Novel", 2006, "nominated"),
            _award("Audie Award", "Audiobook of the Year", 2006, "won"),  # link: /award/show/3572-audie-award
            _award("British Book of the Year", None, 2006, "won"),
        ],
    },
    "next-130679210": {
        "original_title": None,
        "series_list": [],
        "rating_distribution": {"5": 0, "4": 0, "3": 0, "2": 0, "1": 0},  # a book nobody has rated yet
        "asin": "142196466X",
        "work_id": "149910618",
        "editions_count": None,
        "characters": [],
        "places": [],
        "awards": [],
    },
    "next-1885-rendered": {
        "original_title": "Pride and Prejudice",
        "series_list": [],
        "rating_distribution": {"5": 2478243, "4": 1224023, "3": 538558, "2": 158567, "1": 105500},
        "asin": "1441341706",
        "work_id": "3060926",
        "editions_count": None,
        "characters": [
            "Mr. Bennet",
            "Mrs. Bennet",
            "Jane Bennet",
            "Mary Bennet",
            "Kitty Bennet",
            "Lydia Bennet",
            "Caroline Bingley",
            "Fitzwilliam Darcy",
            "Georgiana Darcy",
            "Lady Catherine de Bourgh",
            "Anne de Bourgh",
            "Colonel Fitzwilliam",
            "Mr. Gardiner",
            "Mrs. Gardiner",
            "Sir William Lucas",
            "Lady Lucas",
            "Charlotte Lucas",
            "Maria Lucas",
            "Charles Bingley",
            "George Wickham",
            "Mr. William Collins",
            "Elizabeth Bennet",
        ],  # fmt: skip
        "places": ["United Kingdom", "Derbyshire, England", "England", "Hertfordshire, England"],
        "awards": [],
    },
    "next-211721806": {
        "original_title": "Dungeon Crawler Carl",
        "series_list": [_series("Dungeon Crawler Carl", "1", "309211")],
        "rating_distribution": {"5": 232567, "4": 124047, "3": 31471, "2": 5900, "1": 2435},
        "asin": "059382024X",
        "work_id": "76027608",
        "editions_count": None,
        "characters": [],
        "places": [],
        "awards": [],
    },
    "next-4214": {
        "original_title": "Life of Pi",
        "series_list": [],
        "rating_distribution": {"5": 604736, "4": 600752, "3": 331062, "2": 106035, "1": 54633},
        "asin": "0770430074",
        "work_id": "1392700",
        "editions_count": None,
        "characters": ["Pi Patel", "Richard Parker", "Orange Juice"],
        "places": ["Pacific Ocean", "Pondicherry", "Toronto, Ontario", "Tomatlan"],
        "awards": [  # awardedAt is 1 January, 08:00 UTC, of the year shown
            _award("Booker Prize", None, 2002, "won"),
            _award("Bollinger Everyman Wodehouse Prize", "Comic Fiction", 2003, "nominated"),
            _award("Exclusive Books Boeke Prize", None, 2003, "won"),
            _award("Deutscher Buchpreis (German Book Prize)", "Belletristik", 2004, "won"),
            _award(
                "Governor General's Literary Awards / Prix littéraires du Gouverneur général",
                "Fiction",
                2001,
                "nominated",
            ),
            _award("Lincoln Award", None, 2005, "nominated"),
            _award("CBC Canada Reads", None, 2003, "nominated"),
            _award("Luisterboek Award", None, 2015, "nominated"),
            _award(
                "QWF (Quebec Writer's Federation) Award", "Paragraphe Hugh MacLennan Prize for Fiction", 2001, "won"
            ),
            _award("Asian/Pacific American Award for Literature", "Adult Fiction", 2003, "won"),
        ],
    },
    "next-44767458": {
        "original_title": "Dune",
        "series_list": [_series("Dune", "1", "45935"), _series("Dune Universe", "14", "106170")],
        "rating_distribution": {"5": 846750, "4": 496453, "3": 197067, "2": 53797, "1": 25406},
        "asin": "059309932X",
        "work_id": "3634639",
        "editions_count": None,
        "characters": [
            "Stilgar",
            "Vladimir Harkonnen",
            "Duncan Idaho",
            "Leto Atreides",
            "Paul Atreides",
            "Alia Atreides",
            "Lady Jessica",
            "Shaddam IV",
            "Gurney Halleck",
        ],  # fmt: skip
        "places": ["Arrakis", "Caladan", "Giedi Prime", "Harko", "Arrakin", "Sietch Tabr"],
        "awards": [
            _award("Hugo Award", "Best Novel", 1966, "won"),
            _award("Nebula Award", "Best Novel", 1965, "won"),
            _award("Seiun Award 星雲賞", "Best Foreign Novel", 1974, "won"),
        ],
    },
    "next-70535": {
        "original_title": "2001: A Space Odyssey",
        "series_list": [_series("Space Odyssey", "1", "49122")],
        "rating_distribution": {"5": 141714, "4": 117956, "3": 51340, "2": 10458, "1": 4291},
        "asin": None,  # apollo gives "asin": null for this edition (no ISBN either)
        "work_id": "208362",
        "editions_count": None,
        "characters": ["Heywood Floyd", "HAL 9000", "Dave Bowman", "Frank Poole"],
        "places": ["Outer Space"],
        "awards": [],
    },
}
BOOK_PAGES = [page for page in PAGES if page.stem in NEW_FIELDS]
NEXT_PAGES = [page for page in BOOK_PAGES if page.stem.startswith("next-")]


def test_every_book_page_has_its_new_fields_listed():
    assert sorted(NEW_FIELDS) == sorted(p.stem for p in PAGES if _expected(p)["page_type"] == "book")


@pytest.mark.parametrize("page", BOOK_PAGES, ids=[p.stem for p in BOOK_PAGES])
def test_new_fields(page: Path) -> None:
    result = parse_book_page(page.read_bytes())
    assert not isinstance(result, NotABookPage), result
    assert {key: result[key] for key in NEW_FIELDS[page.stem]} == NEW_FIELDS[page.stem]


@pytest.mark.parametrize("page", BOOK_PAGES, ids=[p.stem for p in BOOK_PAGES])
def test_rating_distribution_adds_up_to_the_ratings_and_their_average(page: Path) -> None:
    """The counts add up to ratings_count, and weighted by their stars give the page's average
    rating: a check that the two layouts' opposite orders were read the right way round."""
    result = parse_book_page(page.read_bytes())
    assert not isinstance(result, NotABookPage)
    distribution = result["rating_distribution"]
    assert distribution is not None and result["ratings_count"] is not None and result["rating"] is not None
    total = sum(distribution.values())
    assert total == result["ratings_count"]
    average = sum(int(stars) * count for stars, count in distribution.items()) / total if total else 0.0
    assert round(average, 2) == result["rating"]


@pytest.mark.parametrize("page", NEXT_PAGES, ids=[p.stem for p in NEXT_PAGES])
def test_the_markup_fallback_reads_the_same_histogram_and_first_series(page: Path) -> None:
    """Without __NEXT_DATA__, the rendered histogram and the title's series link give the same values."""
    full = parse_book_page(page.read_bytes())
    assert not isinstance(full, NotABookPage)
    markup_only = parse_book_page(
        re.sub(rb'<script id="__NEXT_DATA__".*?</script>', b"", page.read_bytes(), flags=re.S)
    )
    assert not isinstance(markup_only, NotABookPage)
    assert markup_only["rating_distribution"] == full["rating_distribution"]
    assert markup_only["series_list"] == full["series_list"][:1]  # the page shows its first series only
    assert markup_only["series"] == full["series"]


@pytest.mark.parametrize("page", BOOK_PAGES, ids=[p.stem for p in BOOK_PAGES])
def test_a_real_record_matches_the_documented_record_schema(page: Path) -> None:
    record = {**parse_book_page(page.read_bytes()), "fetched_at": "2026-01-01T00:00:00+00:00", "source": "goodreads"}
    Draft202012Validator(RECORD_SCHEMA).validate(record)


@pytest.mark.parametrize("where", ["head", "body"])
@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_a_real_page_loading_the_challenge_script_is_read_as_without_it(page: Path, where: str) -> None:
    """Since September 2026 goodreads.com's book pages load AWS WAF's challenge.js: still pages."""
    plain = page.read_bytes()
    tagged = with_waf_script(plain, where)
    assert WAF_SCRIPT in tagged and len(tagged) == len(plain) + len(WAF_SCRIPT)
    assert origin_trouble(OriginResponse(200, tagged, None, "https://www.goodreads.com/book/show/1")) is None
    assert has_book_data(tagged) == (_expected(page)["page_type"] == "book")
    assert parse_book_page(tagged) == parse_book_page(plain)
