"""Link canonicalisation: every accepted form names the same book; every refusal says why."""

import pytest

from books.links import MAX_LINK_LENGTH, Refusal, canonical_url, parse_link
from books.queue import job_id

ACCEPTED = [
    "https://www.goodreads.com/book/show/5907",
    "http://goodreads.com/book/show/5907.The_Hobbit",
    "https://www.goodreads.com/book/show/5907-the-hobbit/",
    "https://m.goodreads.com/book/show/5907",
    "https://www.goodreads.com/en/book/show/5907-the-hobbit?from_search=true&qid=x&rank=1#reviews",
    "https://www.goodreads.com/fr/book/show/5907",
    "https://www.goodreads.com/zh-TW/book/show/5907",
    "  https://www.goodreads.com/book/show/5907\n",
    "HTTPS://WWW.GOODREADS.COM/book/show/5907",
    "www.goodreads.com/book/show/5907-the-hobbit",
    "goodreads.com/book/show/5907",
    "https://www.goodreads.com/book/show/5907_The_Hobbit",
    "https://www.goodreads.com/book/show/5907.Le_Hobbit_%C3%A9dition",
    "https://www.goodreads.com/book/show/5907?ac=1",
    "https://www.goodreads.com/book/show/5907#other_reviews",
    "https://www.goodreads.com/book/show/05907",
]

REFUSED = [
    ("https://goodreads.com.evil.example/book/show/5907", "not a Goodreads host"),
    ("https://evilgoodreads.com/book/show/5907", "not a Goodreads host"),
    ("https://user@www.goodreads.com/book/show/5907", "user information"),
    ("https://www.goodreads.com@evil.example/book/show/5907", "user information"),
    ("https://www.goodreads.com:443/book/show/5907", "explicit port"),
    ("https://www.goodreads.com:8080/book/show/5907", "explicit port"),
    ("ftp://www.goodreads.com/book/show/5907", "scheme 'ftp'"),
    ("javascript:alert(1)", "scheme 'javascript'"),
    ("file:///etc/passwd", "scheme 'file'"),
    ("https://www.goodreads.com/author/show/656983.J_R_R_Tolkien", "path must be /book/show/<id>"),
    ("https://www.goodreads.com/series/66175-the-lord-of-the-rings", "path must be /book/show/<id>"),
    ("https://www.goodreads.com/work/editions/1540236-the-hobbit", "path must be /book/show/<id>"),
    ("https://www.goodreads.com/book/isbn/0618260307", "path must be /book/show/<id>"),
    ("https://www.goodreads.com/book/show/", "path must be /book/show/<id>"),
    ("https://www.goodreads.com/book/show/5907/reviews", "path must be /book/show/<id>"),
    ("https://www.goodreads.com/book/show/abc", "is not a positive number"),
    ("https://www.goodreads.com/book/show/0", "is not a positive number"),
    ("https://www.goodreads.com/book/show/1234567890123", "is not a positive number"),
    ("https://www.goodreads.com/book/show/５９０７", "is not a positive number"),
    ("https://www.goodreads.com/book/show/59 07", "spaces, control characters"),
    ("https://www.goodreads.com/book/show/5907\x00", "control characters"),
    ("https://www.goodreads.com\\@evil.example/book/show/5907", "backslashes"),
    ("https://www.gооdreads.com/book/show/5907", "not a Goodreads host"),  # Cyrillic o
    ("https://xn--gdreads-5wa.com/book/show/5907", "not a Goodreads host"),
    ("https:www.goodreads.com/book/show/5907", "no host"),
    ("", "empty"),
    ("   ", "empty"),
    ("https://www.goodreads.com/book/show/5907?" + "a" * MAX_LINK_LENGTH, "longer than 2048"),
    (5907, "not a number"),
    (None, "not null"),
    (["https://www.goodreads.com/book/show/5907"], "not an array"),
    ({"url": "https://www.goodreads.com/book/show/5907"}, "not an object"),
    (True, "not a boolean"),
]


@pytest.mark.parametrize("link", ACCEPTED)
def test_every_common_form_names_the_same_book(link):
    assert parse_link(link) == "5907"


@pytest.mark.parametrize(("link", "reason"), REFUSED)
def test_refusals_say_why(link, reason):
    result = parse_link(link)
    assert isinstance(result, Refusal)
    assert reason in result.reason


def test_canonical_url_and_job_id():
    assert (
        canonical_url(parse_link("http://m.goodreads.com/en/book/show/42.x"))
        == "https://www.goodreads.com/book/show/42"
    )
    assert canonical_url("42", "http://127.0.0.1:9") == "http://127.0.0.1:9/book/show/42"
    assert job_id("42") == "book-42"


def test_a_link_of_exactly_the_limit_is_accepted():
    link = "https://www.goodreads.com/book/show/5907?q="
    link += "x" * (MAX_LINK_LENGTH - len(link))
    assert parse_link(link) == "5907"
