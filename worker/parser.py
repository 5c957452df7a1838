"""Goodreads book page → record. Pure: bytes in, a ``PageRecord`` of plain values out.

Two layouts exist. The current one (2022 onward, Next.js) carries everything in
two script tags, so those are located and decoded directly instead of building
a tree of the whole page; its markup is only read when the data is missing.
The legacy layout (until 2022) has its data in the markup, and is read with
BeautifulSoup over just the elements that hold it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypedDict

from bs4 import BeautifulSoup, ElementFilter, Tag

from books.links import BookId, canonical_url
from books.record import Award, Contributor, PageRecord, RatingDistribution, SeriesEntry


@dataclass(frozen=True)
class NotABookPage:
    """The page holds no book: a sign-in wall, an empty body, or no book data."""

    kind: str  # "sign_in_wall" | "empty" | "incomplete" | "no_book_data"
    detail: str


def parse_book_page(page: bytes | str, requested_id: str | None = None) -> PageRecord | NotABookPage:
    """Read a book's record from a Goodreads page of either layout.

    ``requested_id`` names the book when the page's own data does not (the
    canonical link and og:url can name another edition, so they are not used).
    """
    data = page.encode() if isinstance(page, str) else page
    if not data.strip():
        return NotABookPage("empty", "the page is empty")
    if not _END_OF_HTML.search(data, max(0, len(data) - 65536)):
        return NotABookPage("incomplete", "the page is cut off before its end")

    # The current layout is read from the bytes: only its data is decoded, not the whole page.
    record = None
    next_data = _script_json(data, _content_start(data, b"script", b'id="__NEXT_DATA__"'))
    if next_data is not None:
        record = _from_apollo(data, next_data, requested_id)
    if record is None:
        text = _decode(data)
        if "application/ld+json" in text:
            record = _from_json_ld_and_markup(data, text, requested_id)
        if record is None and 'id="bookTitle"' in text:
            record = _from_legacy(text, requested_id)
    if record is not None and record["title"]:
        return record

    if looks_like_sign_in(data):
        return NotABookPage("sign_in_wall", "Goodreads answered with a sign-in page")
    return NotABookPage("no_book_data", "the page holds no book data")


def has_book_data(page: bytes) -> bool:
    """Whether the page carries a book's data in a layout the parser reads: a ``__NEXT_DATA__``
    Book, a JSON-LD Book or a legacy ``#bookTitle``. Such a page is a book page whatever
    scripts it loads (since September 2026 every goodreads.com page loads AWS WAF's
    challenge script), so a bot challenge is told from a book by this. No tree is built."""
    next_data = _script_json(page, _content_start(page, b"script", b'id="__NEXT_DATA__"'))
    state = _dig(next_data, "props", "pageProps", "apolloState")
    if isinstance(state, dict) and _page_book(state) is not None:
        return True
    return _json_ld_book(page) is not None or b'id="bookTitle"' in page


# --- Current layout: __NEXT_DATA__ → apolloState -----------------------------------------

_END_OF_HTML = re.compile(rb"</html\s*>", re.I)


def _content_start(page: bytes, tag: bytes, attribute: bytes, start: int = 0) -> int:
    """Where the content of the first ``<tag ...>`` carrying ``attribute`` (such as
    ``id="__NEXT_DATA__"``) begins, searching from ``start``; -1 if there is none.

    Plain search: on a page of most of a megabyte, a regular expression that tries
    every ``<`` costs more than decoding the data it finds."""
    position = page.find(attribute, start)
    while position != -1:
        opening = page.rfind(b"<", 0, position)
        name_end = opening + 1 + len(tag)
        if (
            opening != -1
            and page.startswith(tag, opening + 1)
            and page[name_end : name_end + 1].isspace()
            and b">" not in page[opening:position]
        ):
            end = page.find(b">", position)
            return -1 if end == -1 else end + 1
        position = page.find(attribute, position + 1)
    return -1


def _script_json(page: bytes, content: int) -> Any:
    """Decode the JSON body of the script whose content begins at ``content`` (None if -1)."""
    if content == -1:
        return None
    try:
        return json.loads(_decode(page[content : page.find(b"</script>", content)]))
    except ValueError:
        return None


def _from_apollo(page: bytes, next_data: Any, requested_id: str | None) -> PageRecord | None:
    state = _dig(next_data, "props", "pageProps", "apolloState")
    if not isinstance(state, dict):
        return None
    book = _page_book(state)
    if book is None:
        return None
    details = book.get("details") or {}
    work = _resolve(state, book.get("work")) or {}
    work_details = work.get("details") or {}
    stats = work.get("stats") or {}

    contributors: list[Contributor] = []
    edges = [book.get("primaryContributorEdge")] + list(book.get("secondaryContributorEdges") or [])
    for edge in edges:
        edge = edge or {}
        node = _resolve(state, edge.get("node"))
        name = _clean((node or {}).get("name"))
        if name:
            contributors.append({"name": name, "role": _clean(edge.get("role")) or "Author"})

    series_list: list[SeriesEntry] = []
    for entry in book.get("bookSeries") or []:
        series = _resolve(state, entry.get("series")) or {}
        series_title = _clean(series.get("title"))
        if series_title:
            series_list.append(_series_entry(series_title, _clean(entry.get("userPosition")), series.get("webUrl")))

    # Goodreads lists the counts from one star up.
    distribution = stats.get("ratingsCountDist")
    published, first_published = _publication_info(page)
    book_id = _text_id(book.get("legacyId")) or requested_id
    return {
        "book_id": book_id,
        "url": _book_url(book_id),
        "title": _clean(book.get("title")),
        "original_title": _clean(work_details.get("originalTitle")),
        "series": _first_series(series_list),
        "series_list": series_list,
        **_people(contributors),
        "rating": _float(stats.get("averageRating")),
        "ratings_count": _int(stats.get("ratingsCount")),
        "rating_distribution": _distribution(distribution[::-1] if isinstance(distribution, list) else None),
        "reviews_count": _int(stats.get("textReviewsCount")),
        "description": html_to_text(book.get("description")),
        "isbn": _clean(details.get("isbn")),
        "isbn13": _clean(details.get("isbn13")),
        "asin": _clean(details.get("asin")),
        "pages": _int(details.get("numPages")),
        "format": _clean(details.get("format")),
        "language": _clean((details.get("language") or {}).get("name")),
        "publisher": _clean(details.get("publisher")),
        "published": published,
        "published_date": _iso_date(details.get("publicationTime")),
        "first_published": first_published,
        "first_published_date": _iso_date(work_details.get("publicationTime")),
        "work_id": _text_id(work.get("legacyId")),
        "editions_count": _int(_dig(work, "editions", "totalCount")),
        "genres": [name for name in (_clean(_dig(g, "genre", "name")) for g in book.get("bookGenres") or []) if name],
        "characters": _apollo_names(work_details.get("characters")),
        "places": _apollo_names(work_details.get("places")),
        "awards": [award for award in map(_apollo_award, work_details.get("awardsWon") or []) if award],
        "cover_url": _clean(book.get("imageUrl")),
    }


def _page_book(state: dict) -> dict | None:
    """The Book entry the page is about: the one ROOT_QUERY asks for by legacy id."""
    for key, value in (state.get("ROOT_QUERY") or {}).items():
        if key.startswith("getBookByLegacyId"):
            book = _resolve(state, value)
            if book:
                return book
    books = [value for key, value in state.items() if key.startswith("Book:")]
    return books[0] if len(books) == 1 else None


def _resolve(state: dict, reference: Any) -> dict | None:
    if isinstance(reference, dict) and "__ref" in reference:
        return state.get(reference["__ref"])
    return reference if isinstance(reference, dict) else None


def _apollo_names(entries: Any) -> list[str]:
    """The names of a Work's characters or places."""
    names = (_clean(entry.get("name")) for entry in entries or [] if isinstance(entry, dict))
    return [name for name in names if name]


# An award's outcome as pages give it: ``designation`` (WINNER or NOMINEE, the only two real
# pages carry) or, on 2022-era pages, ``hasWon`` (true or false).
_DESIGNATIONS = {"WINNER": "won", "NOMINEE": "nominated"}
_HAS_WON = {True: "won", False: "nominated"}


def _apollo_award(entry: Any) -> Award | None:
    name = _clean(entry.get("name")) if isinstance(entry, dict) else None
    if not name:
        return None
    awarded = _utc_date(entry.get("awardedAt"))
    has_won = entry.get("hasWon")
    return {
        "name": name,
        "category": _clean(entry.get("category")),
        "year": awarded.year if awarded else None,
        # "won" or "nominated" only: an outcome the page does not spell one of these ways is not guessed.
        "outcome": _DESIGNATIONS.get(_clean(entry.get("designation")) or "")
        or (_HAS_WON[has_won] if isinstance(has_won, bool) else None),
    }


def _publication_info(page: bytes) -> tuple[str | None, str | None]:
    """(published, first published) as the page shows them."""
    content = _content_start(page, b"p", b'data-testid="publicationInfo"')
    end = page.find(b"</p>", content)
    if content == -1 or end == -1:
        return None, None
    shown = _clean(BeautifulSoup(_decode(page[content:end]), "html.parser").get_text())
    return _split_publication(shown or "")


def _split_publication(shown: str) -> tuple[str | None, str | None]:
    first = re.match(r"first published\s+(.+)", shown, re.I)
    if first:
        return None, first.group(1)
    edition = re.match(r"(?:published|expected publication)\s+(.+)", shown, re.I)
    return (edition.group(1) if edition else None), None


# --- Fallback: JSON-LD and the data-testid markup -----------------------------------------

_TESTIDS = re.compile(
    "^(bookTitle|description|publicationInfo|pagesFormat|genresList|ratingsCount|reviewsCount|labelTotal-[1-5])$"
)


class _TestidElements(ElementFilter):
    """Builds only the elements that hold the book's data: those with a known data-testid,
    and the title section (whose heading links the book's series)."""

    def allow_tag_creation(self, nsprefix: str | None, name: str, attrs: Any) -> bool:
        attrs = attrs or {}
        if _TESTIDS.match(attrs.get("data-testid") or ""):
            return True
        return "BookPageTitleSection__title" in (attrs.get("class") or "").split()

    def allow_string_creation(self, string: str) -> bool:
        return False


_TESTID_ELEMENTS = _TestidElements()
_LEADING_COUNT = re.compile(r"\s*([\d,]+)")


def _from_json_ld_and_markup(page: bytes, text: str, requested_id: str | None) -> PageRecord | None:
    data = _json_ld_book(page)
    if data is None:
        return None
    markup = BeautifulSoup(text, "lxml", parse_only=_TESTID_ELEMENTS)  # type: ignore[arg-type]

    def testid(name: str) -> Tag | None:
        return markup.find(None, {"data-testid": name})

    authors = data.get("author") or []
    if isinstance(authors, dict):
        authors = [authors]
    names = (_clean(_unescape(author.get("name"))) for author in authors if isinstance(author, dict))
    contributors: list[Contributor] = [{"name": name, "role": "Author"} for name in names if name]
    rating = data.get("aggregateRating") or {}
    title_tag = testid("bookTitle")
    description_tag = testid("description")
    description = description_tag.find(class_="Formatted") if description_tag else None
    info = testid("publicationInfo")
    published, first_published = _split_publication(_clean(info.get_text()) or "") if info else (None, None)
    genres_tag = testid("genresList")
    isbn = _clean(data.get("isbn"))
    series_link = markup.select_one(".BookPageTitleSection__title h3 a[href*='/series/']")
    series_label = _text_of(series_link)
    series_list = [_series_from_label(series_label, _attribute(series_link, "href"))] if series_label else []
    histogram = [_LEADING_COUNT.match(_text_of(testid(f"labelTotal-{stars}")) or "") for stars in range(5, 0, -1)]
    return {
        "book_id": requested_id,
        "url": _book_url(requested_id),
        "title": _clean(title_tag.get_text()) if title_tag else _clean(_unescape(data.get("name"))),
        "original_title": None,
        "series": _first_series(series_list),
        "series_list": series_list,
        **_people(contributors),
        "rating": _float(rating.get("ratingValue")),
        "ratings_count": _int(rating.get("ratingCount")),
        "rating_distribution": _distribution([count.group(1) if count else None for count in histogram]),
        "reviews_count": _int(rating.get("reviewCount")),
        "description": html_to_text(str(description)) if description else None,
        "isbn": isbn if isbn and len(isbn) == 10 else None,
        "isbn13": isbn if isbn and len(isbn) == 13 else None,
        "asin": None,
        "pages": _int(data.get("numberOfPages")),
        "format": _clean(data.get("bookFormat")),
        "language": _clean(data.get("inLanguage")),
        "publisher": None,
        "published": published,
        "published_date": None,
        "first_published": first_published,
        "first_published_date": None,
        "work_id": None,
        "editions_count": None,
        "genres": _names(genres_tag.select(".Button__labelItem")) if genres_tag else [],
        "characters": [],
        "places": [],
        "awards": [],
        "cover_url": _clean(data.get("image")),
    }


def _json_ld_book(page: bytes) -> dict | None:
    content = _content_start(page, b"script", b'type="application/ld+json"')
    while content != -1:
        data = _script_json(page, content)
        if isinstance(data, dict) and data.get("@type") == "Book":
            return data
        content = _content_start(page, b"script", b'type="application/ld+json"', content)
    return None


# --- Legacy layout ------------------------------------------------------------------------

_LEGACY_IDS = {"bookTitle", "bookSeries", "bookAuthors", "bookMeta", "description", "details", "coverImage"}


class _LegacyElements(ElementFilter):
    """Builds only the elements that hold a legacy page's book data (and their contents)."""

    def allow_tag_creation(self, nsprefix: str | None, name: str, attrs: Any) -> bool:
        attrs = attrs or {}
        if attrs.get("id") in _LEGACY_IDS:
            return True
        if name == "div" and "elementList" in (attrs.get("class") or "").split():
            return True
        return name == "input" and attrs.get("name") == "book_id"

    def allow_string_creation(self, string: str) -> bool:
        return False


_LEGACY_STRAINER = _LegacyElements()
_LEGACY_PHOTO_ID = re.compile(r'href="/book/photo/(\d+)')
_LEGACY_WORK_ID = re.compile(r'href="(?:https://www\.goodreads\.com)?/work/(?:editions|shelves|quotes)/(\d+)')
_LEGACY_EDITIONS = re.compile(r">\s*Other Editions \(([\d,]+)\)\s*<")
_LEGACY_RATING_GRAPH = re.compile(r"renderRatingGraph\(\s*\[([^\]]*)\]")
_LEGACY_AWARD = re.compile(r"(?P<shown>.+?)(?:\s+\((?P<year>\d{4})\))?")
_LEGACY_NOMINATION = re.compile(r"(?P<name>.+?) Nominee(?: for (?P<category>.+))?")
_AWARD_SLUG = re.compile(r"/award/show/\d+-([a-z0-9-]+)")
_PUBLISHED_ROW = re.compile(
    r"(?:Published|Expected publication)\s+(?P<date>.+?)(?:\s+by\s+(?P<publisher>.+?))?\s*"
    r"(?:\(first published\s+(?P<first>.+?)\))?$",
    re.I,
)


def _from_legacy(text: str, requested_id: str | None) -> PageRecord | None:
    # bs4 types parse_only as a SoupStrainer, but only uses the ElementFilter methods.
    soup = BeautifulSoup(text, "lxml", parse_only=_LEGACY_STRAINER)  # type: ignore[arg-type]
    title = soup.find(id="bookTitle")
    if title is None:
        return None

    contributors: list[Contributor] = []
    for container in soup.select("#bookAuthors .authorName__container"):
        name = _text_of(container.select_one("a.authorName"))
        role = container.select_one(".role")
        if name:
            contributors.append(
                {"name": name, "role": _clean(role.get_text().strip("() \n") if role else "") or "Author"}
            )

    series_tag = soup.find(id="bookSeries")
    heading_series: list[SeriesEntry] = []
    if series_tag and (label := _clean(series_tag.get_text())):
        link = series_tag.find("a")
        heading_series = [_series_from_label(label.strip("()").strip(), _attribute(link, "href") if link else None)]

    published = first_published = publisher = None
    details = soup.find(id="details")
    if details:
        for row in details.find_all("div", class_="row", recursive=False):
            match = _PUBLISHED_ROW.match(_clean(row.get_text()) or "")
            if match:
                published, publisher, first_published = match.group("date", "publisher", "first")

    data_box = _legacy_data_box(soup)
    isbn_row = _text_of(data_box.get("ISBN")) or ""
    isbn10 = re.match(r"\s*([0-9]{9}[0-9X])\b", isbn_row)
    isbn13 = re.search(r"\b([0-9]{13})\b", isbn_row + " " + (_text_of(data_box.get("ISBN13")) or ""))
    # The data box lists every series the page shows; the heading only the first.
    series_row = data_box.get("Series")
    series_list = [
        _series_from_label(label, _attribute(link, "href"))
        for link in (series_row.select("a[href*='/series/']") if series_row else [])
        if (label := _text_of(link))
    ] or heading_series
    awards_row = data_box.get("Literary Awards")
    rating_graph = _LEGACY_RATING_GRAPH.search(text)
    work_id = _LEGACY_WORK_ID.search(text)
    editions = _LEGACY_EDITIONS.search(text)

    description = soup.find(id="description")
    description_text = None
    if description:
        spans = description.find_all("span", recursive=False)
        full = [span for span in spans if "display:none" in (_attribute(span, "style") or "").replace(" ", "")]
        chosen = full[0] if full else (spans[0] if spans else None)
        description_text = html_to_text(chosen.decode_contents()) if chosen else None

    cover = soup.find(id="coverImage")
    pages = soup.select_one("[itemprop=numberOfPages]")
    language = soup.select_one("[itemprop=inLanguage]")
    book_format = soup.select_one("[itemprop=bookFormat]")
    book_id = _legacy_book_id(text, soup) or requested_id
    return {
        "book_id": book_id,
        "url": _book_url(book_id),
        "title": _clean(title.get_text()),
        "original_title": _text_of(data_box.get("Original Title")),
        "series": _first_series(heading_series),
        "series_list": series_list,
        **_people(contributors),
        "rating": _float(_text_of(soup.select_one("[itemprop=ratingValue]"))),
        "ratings_count": _int(_content_of(soup.select_one("meta[itemprop=ratingCount]"))),
        "rating_distribution": _distribution(rating_graph.group(1).split(",") if rating_graph else None),
        "reviews_count": _int(_content_of(soup.select_one("meta[itemprop=reviewCount]"))),
        "description": description_text,
        "isbn": isbn10.group(1) if isbn10 else None,
        "isbn13": isbn13.group(1) if isbn13 else None,
        "asin": _text_of(data_box.get("ASIN")),
        "pages": _int(re.sub(r"\D", "", _text_of(pages) or "")),
        "format": _text_of(book_format),
        "language": _text_of(language),
        "publisher": publisher,
        "published": published,
        "published_date": None,
        "first_published": first_published,
        "first_published_date": None,
        "work_id": work_id.group(1) if work_id else None,
        "editions_count": _int(editions.group(1)) if editions else None,
        "genres": _legacy_genres(soup),
        "characters": _legacy_links(data_box.get("Characters"), "/characters/"),
        "places": _legacy_links(data_box.get("Setting"), "/places/"),
        "awards": [award for award in map(_legacy_award, awards_row.select("a.award") if awards_row else []) if award],
        "cover_url": _attribute(cover, "src"),
    }


def _legacy_book_id(text: str, soup: BeautifulSoup) -> str | None:
    photo = _LEGACY_PHOTO_ID.search(text)
    if photo:
        return photo.group(1)
    hidden = soup.find("input", attrs={"name": "book_id"})
    return _text_id(hidden.get("value")) if hidden else None


def _legacy_data_box(soup: BeautifulSoup) -> dict[str, Tag]:
    """The book data box's rows: each row title's item element."""
    rows = {}
    for title in soup.select("#bookDataBox .infoBoxRowTitle"):
        item = title.find_next_sibling(class_="infoBoxRowItem")
        if isinstance(item, Tag):
            rows[_clean(title.get_text()) or ""] = item
    return rows


def _legacy_links(row: Tag | None, path: str) -> list[str]:
    """The names a data box row links to under ``path`` (a "...more" toggle links elsewhere)."""
    return _names(row.select(f"a[href*='{path}']")) if row else []


def _legacy_award(link: Tag) -> Award | None:
    """An award as the data box shows it: "<award>[ Nominee][ for <category>] (<year>)"."""
    shown = _LEGACY_AWARD.fullmatch(_text_of(link) or "")
    if not shown:
        return None
    text, year = shown.group("shown", "year")
    nomination = _LEGACY_NOMINATION.fullmatch(text)
    if nomination:
        name, category = nomination.group("name", "category")
    else:
        name, category = _award_and_category(text, _attribute(link, "href"))
    return {
        "name": name,
        "category": category,
        "year": int(year) if year else None,
        "outcome": "nominated" if nomination else "won",
    }


def _award_and_category(text: str, link: str | None) -> tuple[str, str | None]:
    """Split "<award> for <category>" at the " for " after which the award's name matches
    its link (``/award/show/<id>-<slug>``); unsplit where none does, as names hold "for" too."""
    slug = _AWARD_SLUG.search(link or "")
    if slug:
        for separator in re.finditer(" for ", text):
            if _slug(text[: separator.start()]) == slug.group(1):
                return text[: separator.start()], text[separator.end() :]
    return text, None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _legacy_genres(soup: BeautifulSoup) -> list[str]:
    genres = []
    for row in soup.find_all("div", class_="elementList"):
        left = row.find(class_="left")
        names = _names((left or row).select("a.bookPageGenreLink"))
        if names:
            genres.append(" > ".join(names))
    return genres


# --- Shared helpers -----------------------------------------------------------------------

# The <title>, canonical link or form of Goodreads' and Amazon's sign-in pages.
_SIGN_IN_MARKERS = (
    b"<title>Sign in</title>",
    b"/user/sign_in' rel='canonical'",
    b'href="https://www.goodreads.com/user/sign_in" rel="canonical"',
    b"/ap/signin",
)


def looks_like_sign_in(page: bytes) -> bool:
    """Whether the page is Goodreads' or Amazon's sign-in page (its first 20 KB tell)."""
    head = page[:20000]
    return any(marker in head for marker in _SIGN_IN_MARKERS)


def html_to_text(fragment: str | None) -> str | None:
    """HTML → plain text: entities decoded, <br> and paragraphs kept as line breaks,
    other whitespace collapsed. None for an empty description."""
    if not fragment or not fragment.strip():
        return None
    soup = BeautifulSoup(fragment, "html.parser")
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for block in soup.find_all(["p", "div"]):
        block.append("\n\n")
    lines = [" ".join(line.split()) for line in soup.get_text().split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text or None


class _People(TypedDict):
    author: str | None
    authors: list[str]
    contributors: list[Contributor]


def _people(contributors: list[Contributor]) -> _People:
    """author (the primary author), authors (every name) and contributors (with roles)."""
    names = [person["name"] for person in contributors]
    primary = next((p["name"] for p in contributors if p["role"].lower() == "author"), names[0] if names else None)
    return {"author": primary, "authors": names, "contributors": contributors}


def _book_url(book_id: str | None) -> str | None:
    return canonical_url(BookId(book_id)) if book_id else None


def _series_label(name: str, position: str | None) -> str:
    return f"{name} #{position}" if position else name


_SERIES_ID = re.compile(r"/series/(\d+)")


def _series_entry(name: str, position: str | None, link: Any) -> SeriesEntry:
    """A series from its name, position and link (``/series/<id>-<slug>``, which holds its id)."""
    found = _SERIES_ID.search(link) if isinstance(link, str) else None
    return {"name": name, "position": position, "series_id": found.group(1) if found else None}


def _series_from_label(label: str, link: Any) -> SeriesEntry:
    """A series from the text a page shows for it, "<name> #<position>" or just "<name>"."""
    name, _, position = label.rpartition(" #")
    return _series_entry(name, position, link) if name and position else _series_entry(label, None, link)


def _first_series(series_list: list[SeriesEntry]) -> str | None:
    first = series_list[0] if series_list else None
    return _series_label(first["name"], first["position"]) if first else None


def _distribution(counts_from_five_down: list[Any] | None) -> RatingDistribution | None:
    """The star counts, listed from five stars down; None unless the page gives exactly five."""
    given = counts_from_five_down or []
    counts = [count for count in map(_int, given) if count is not None]
    if len(given) != 5 or len(counts) != 5:
        return None
    five, four, three, two, one = counts
    return {"5": five, "4": four, "3": three, "2": two, "1": one}


def _clean(value: Any) -> str | None:
    """Collapse whitespace; '' and non-strings become None."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def _decode(part: bytes) -> str:
    return part.decode("utf-8", errors="replace")


def _unescape(value: Any) -> Any:
    return html.unescape(value) if isinstance(value, str) else value


def _names(tags: Iterable[Tag]) -> list[str]:
    """The non-empty texts of these elements, in order."""
    return [name for name in (_text_of(tag) for tag in tags) if name]


def _text_of(tag: Tag | None) -> str | None:
    return _clean(tag.get_text()) if tag else None


def _content_of(tag: Tag | None) -> str | None:
    return _attribute(tag, "content")


def _attribute(tag: Tag | None, name: str) -> str | None:
    """A single-valued attribute (bs4 gives a list only for multi-valued ones such as class)."""
    value = tag.get(name) if tag else None
    return value if isinstance(value, str) else None


def _text_id(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text if text.isdigit() else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    digits = str(value).replace(",", "").strip() if value is not None else ""
    return int(digits) if digits.isdigit() else None


def _float(value: Any) -> float | None:
    try:
        return float(str(value).strip()) if value is not None else None
    except ValueError:
        return None


def _utc_date(milliseconds: Any) -> date | None:
    """The UTC date of a Goodreads time (milliseconds since 1970)."""
    if not isinstance(milliseconds, (int, float)) or isinstance(milliseconds, bool):
        return None
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC).date()


def _iso_date(milliseconds: Any) -> str | None:
    found = _utc_date(milliseconds)
    return found.isoformat() if found else None


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
