"""Open Library as the second source, in process: the pure parser on recorded real answers,
and the fill job against the fake Open Library (tests/openlibrary.py) on the tests' Redis,
from a challenged or blocked Goodreads to the API's answer, and back to Goodreads' record."""

from __future__ import annotations

import json

import pytest
from jsonschema_rs import Draft202012Validator
from redis import Redis
from rq.registry import ScheduledJobRegistry

from books.counters import Counters
from books.hints import BookHints, Hints
from books.jobs import job_queue
from books.links import BookId
from books.queue import BookQueue
from books.record import RECORD_FIELDS
from books.settings import ConfigError, Settings
from books.store import BookStore, dumps_record
from tests.conftest import enqueue_scheduled_now
from tests.openlibrary import FIXTURES
from tests.test_parser import RECORD_SCHEMA
from worker.openlibrary_parser import (
    Finds,
    build_record,
    edition_is_the_book,
    load_json,
    olid,
    search_doc,
    valid_isbn13,
)

FINAL_EMPIRE = BookId("68428")  # found by its Goodreads id
STORMBRINGER = BookId("60141")  # found by the ISBN-13 of an import's row
STORMBRINGER_ISBN13 = "9780441787548"
UNKNOWN = BookId("999999991")


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


# The pure parser, on the recorded answers.


def test_a_search_by_goodreads_id_gives_the_works_values_and_leaves_goodreads_fields_empty():
    doc = search_doc(fixture("search_id_goodreads_68428"), FINAL_EMPIRE)
    record = build_record(FINAL_EMPIRE, Finds(doc=doc))
    assert record["book_id"] == "68428" and record["url"] == "https://www.goodreads.com/book/show/68428"
    assert record["title"] == "The Final Empire (Mistborn, Book 1)"
    assert (record["author"], record["authors"]) == ("Brandon Sanderson", ["Brandon Sanderson"])
    assert record["contributors"] == [{"name": "Brandon Sanderson", "role": "Author"}]
    assert (record["pages"], record["first_published"]) == (671, "2001")  # the editions' median
    assert record["cover_url"] == "https://covers.openlibrary.org/b/id/524535-L.jpg"
    # Seventeen publishers, three languages, 38 ISBNs of the work: none is this edition's.
    assert (record["publisher"], record["language"], record["isbn"], record["isbn13"]) == (None, None, None, None)
    assert (record["rating"], record["ratings_count"], record["genres"], record["awards"]) == (None, None, [], [])
    assert list(record) == list(RECORD_FIELDS[:-2])  # every field, fetched_at and source added on storing


def test_an_edition_gives_its_own_values_the_work_its_first_date_the_authors_their_names():
    edition = fixture("books_OL7526806M")
    finds = Finds(edition=edition, work=fixture("works_OL2697512W"), author_names=["Michael Moorcock"])
    record = build_record(STORMBRINGER, finds)
    assert (record["title"], record["author"]) == ("Stormbringer", "Michael Moorcock")
    assert (record["isbn"], record["isbn13"], record["pages"]) == ("0441787541", "9780441787548", 220)
    assert (record["publisher"], record["published"], record["language"]) == ("Ace Books", "December 1992", "eng")
    assert record["first_published"] == "1965"
    assert record["cover_url"] == "https://covers.openlibrary.org/b/id/284623-L.jpg"
    assert record["description"] is None  # neither the work nor the edition has one


def test_the_description_is_plain_text_from_the_edition_when_the_work_has_none():
    record = build_record(BookId("58575826"), Finds(edition=fixture("books_OL32815550M")))
    assert record["description"].startswith("Six days ago, astronaut Mark Watney")
    assert "\r" not in record["description"] and "\n\nNow he's sure" in record["description"]
    assert (record["format"], record["publisher"], record["pages"]) == ("Hardcover", "Crown Publishers", 369)


@pytest.mark.parametrize(
    "finds",
    [
        Finds(doc=fixture("search_id_goodreads_68428")["docs"][0]),
        Finds(edition=fixture("books_OL28002220M"), author_names=["Stuart J. Russell", "Peter Norvig"]),
        Finds(edition=fixture("books_OL32815550M")),
    ],
)
def test_an_open_library_record_matches_the_documented_record_schema(finds):
    record = {**build_record(FINAL_EMPIRE, finds), "fetched_at": "2026-01-01T00:00:00+00:00", "source": "openlibrary"}
    Draft202012Validator(RECORD_SCHEMA).validate(record)


def test_an_edition_is_the_book_by_its_goodreads_id_or_the_isbn13_of_the_hints():
    edition = fixture("books_OL7526806M")
    assert edition_is_the_book(edition, STORMBRINGER, None)
    assert edition_is_the_book(edition, BookId("1"), STORMBRINGER_ISBN13)
    assert not edition_is_the_book(edition, BookId("1"), None)
    assert not edition_is_the_book(fixture("books_OL28002220M"), BookId("1"), None)  # no Goodreads id at all
    assert not edition_is_the_book(None, STORMBRINGER, None)


def test_a_search_document_listing_other_goodreads_ids_is_not_the_book():
    assert search_doc(fixture("search_id_goodreads_68428"), BookId("1")) is None
    assert search_doc({"docs": [{"key": "/works/../../admin"}, "x"]}, FINAL_EMPIRE) is None
    assert search_doc(None, FINAL_EMPIRE) is None


@pytest.mark.parametrize(
    ("key", "kind", "expected"),
    [
        ("/works/OL2697512W", "W", "OL2697512W"),
        ("OL7526806M", "M", "OL7526806M"),
        ("/authors/OL394285A", "W", None),  # the wrong kind
        ("/works/OL0W", "W", None),
        ("/works/OL1W/../../x", "W", None),
        ("/works/OL1W?x=1", "W", None),
        (42, "W", None),
    ],
)
def test_only_olids_of_the_expected_kind_become_keys(key, kind, expected):
    assert olid(key, kind) == expected


def test_isbn13_check_digits_and_json_objects():
    assert valid_isbn13(STORMBRINGER_ISBN13) == STORMBRINGER_ISBN13
    assert valid_isbn13("9780441787549") is None and valid_isbn13("0441787541") is None
    assert load_json(b"[1]") is None and load_json(b"<html>") is None and load_json(b'{"a": 1}') == {"a": 1}


# Settings.


def test_the_fallback_settings_are_checked_and_the_contact_goes_into_the_user_agent():
    settings = Settings.from_env({"CONTACT_EMAIL": "ops@example.org"})
    assert settings.fallback_source == "openlibrary" and settings.openlibrary_rate == 1.0
    assert settings.openlibrary_user_agent.endswith("(contact: ops@example.org)")
    assert Settings().openlibrary_user_agent == Settings().user_agent
    for name, value in [
        ("FALLBACK_SOURCE", "google"),
        ("OPENLIBRARY_BASE_URL", "ftp://openlibrary.org"),
        ("OPENLIBRARY_RATE", "-1"),
        ("CONTACT_EMAIL", "ops@example.org\r\nX-Evil: 1"),
        ("CONTACT_EMAIL", "not an address"),
    ]:
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: value})


# The fill job, against the fake Open Library.


@pytest.fixture
def second_source(configure, openlibrary):
    """Settings with the fake Open Library, no rate limit, and a fleet that pauses at once."""

    def apply(**overrides: str) -> Settings:
        defaults = {
            "FALLBACK_SOURCE": "openlibrary",
            "OPENLIBRARY_RATE": "0",
            "CONTACT_EMAIL": "ops@example.org",
            "ORIGIN_PAUSE_AFTER": "1",
        }
        return configure(OPENLIBRARY_BASE_URL=openlibrary.url, **(defaults | overrides))

    return apply


@pytest.fixture
def run_fills(redis, run_jobs):
    """Run the fills asked for (scheduled on the control queue), as RQ's scheduler would."""

    def run(settings: Settings) -> None:
        enqueue_scheduled_now(redis, settings.control_queue_name)
        run_jobs(settings.control_queue_name)

    return run


def post(client, book_id: BookId) -> None:
    answer = client.post("/parseGoodreadsLinks", json=[f"https://www.goodreads.com/book/show/{book_id}"])
    assert answer.status_code == 202, answer.json


def lookup(client, book_id: BookId):
    return client.get("/getBookInfo", query_string={"url": f"https://www.goodreads.com/book/show/{book_id}"})


def metric(client, line_start: str) -> float:
    lines = client.get("/metrics").text.splitlines()
    return next(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(line_start))


def test_a_challenged_book_answers_open_librarys_record_until_goodreads_serves_it(
    redis, second_source, origin, openlibrary, run_jobs, run_due_jobs, run_fills
):
    settings = second_source()
    from app import create_app

    app = create_app(settings)
    client = app.test_client()
    origin.everyone("waf")
    post(client, FINAL_EMPIRE)
    run_jobs()
    assert lookup(client, FINAL_EMPIRE).json["status"] == "paused"
    run_fills(settings)
    answer = lookup(client, FINAL_EMPIRE)
    assert answer.status_code == 200
    record = answer.json
    assert (record["source"], record["title"], record["rating"]) == (
        "openlibrary",
        "The Final Empire (Mistborn, Book 1)",
        None,
    )
    assert list(record) == list(RECORD_FIELDS)
    # 22 editions, none known as this one: the work alone (not recorded: 404) is asked for after.
    assert openlibrary.paths() == ["/search.json", "/works/OL5738148W.json"]
    assert all("ops@example.org" in request.user_agent for request in openlibrary.requests)
    batch = client.post("/parseGoodreadsLinks", json=[f"https://www.goodreads.com/book/show/{FINAL_EMPIRE}"]).json
    progress = client.get(f"/batches/{batch['batch_id']}").json
    assert (progress["counts"]["paused"], progress["sources"]) == (1, {"goodreads": 0, "openlibrary": 1})
    assert metric(client, 'goodreads_records_by_source_total{source="openlibrary"}') == 1
    assert metric(client, "goodreads_openlibrary_requests_total") == 2

    # The book stays due for Goodreads: when the challenge lifts, its record replaces Open Library's.
    origin.everyone("page")
    run_due_jobs()
    app.extensions["record_cache"].close()
    replaced = create_app(settings).test_client()
    record = lookup(replaced, FINAL_EMPIRE).json
    assert (record["source"], record["title"]) == ("goodreads", "The Long Way Home")
    assert replaced.get(f"/batches/{batch['batch_id']}").json["sources"] == {"goodreads": 1, "openlibrary": 0}
    run_fills(settings)  # nothing left to fill
    assert len(openlibrary.paths()) == 2


def test_a_blocked_book_is_found_by_the_isbn13_of_its_import(
    redis, second_source, client, origin, openlibrary, run_jobs, run_fills
):
    settings = second_source(RETRY_MAX="0")
    origin.everyone("signin")
    Hints(redis, settings.key_prefix, settings.batch_ttl).save({STORMBRINGER: BookHints(isbn13=STORMBRINGER_ISBN13)})
    post(client, STORMBRINGER)
    run_jobs()
    assert lookup(client, STORMBRINGER).json["status"] == "blocked"
    run_fills(settings)
    record = lookup(client, STORMBRINGER).json
    assert (record["source"], record["title"], record["author"]) == ("openlibrary", "Stormbringer", "Michael Moorcock")
    assert (record["isbn13"], record["first_published"]) == (STORMBRINGER_ISBN13, "1965")
    assert openlibrary.paths() == [
        f"/isbn/{STORMBRINGER_ISBN13}.json",
        "/books/OL7526806M.json",
        "/authors/OL394285A.json",
        "/works/OL2697512W.json",
    ]
    # A new POST of the link sends it to Goodreads again: Open Library's record is not fresh.
    again = client.post("/parseGoodreadsLinks", json=[f"https://www.goodreads.com/book/show/{STORMBRINGER}"]).json
    assert again["results"][0]["outcome"] == "queued"


def test_no_match_is_remembered_and_the_book_keeps_waiting(
    redis, second_source, client, origin, openlibrary, run_jobs, run_due_jobs, run_fills
):
    settings = second_source()
    origin.everyone("waf")
    post(client, UNKNOWN)
    run_jobs()
    run_fills(settings)
    assert lookup(client, UNKNOWN).json["status"] == "paused"
    assert redis.hget(f"goodreads:status:{UNKNOWN}", "fallback") == b"none"
    run_due_jobs()  # the book's next deferral asks no second time
    run_fills(settings)
    assert openlibrary.paths() == ["/search.json"]
    assert Counters(redis, settings.key_prefix).totals().second_source == {"no_match": 1, "requests": 1}


def test_with_fallback_source_none_open_library_is_never_asked(
    second_source, client, origin, openlibrary, run_jobs, run_fills
):
    settings = second_source(FALLBACK_SOURCE="none")
    origin.everyone("waf")
    post(client, FINAL_EMPIRE)
    run_jobs()
    run_fills(settings)
    assert lookup(client, FINAL_EMPIRE).json["status"] == "paused"
    assert openlibrary.requests == []


def test_an_unreachable_goodreads_is_not_a_refusal(second_source, client, openlibrary, run_jobs, run_fills):
    settings = second_source(GOODREADS_BASE_URL="http://127.0.0.1:9", FETCH_CONNECT_TIMEOUT="0.5")
    post(client, FINAL_EMPIRE)
    run_jobs()
    run_fills(settings)
    assert lookup(client, FINAL_EMPIRE).json["status"] == "paused"
    assert openlibrary.requests == []


def test_open_librarys_robots_txt_is_honoured(second_source, client, origin, openlibrary, run_jobs, run_fills):
    openlibrary.robots_txt = "User-agent: *\nDisallow: /search\n"
    settings = second_source()
    origin.everyone("waf")
    post(client, FINAL_EMPIRE)
    run_jobs()
    run_fills(settings)
    assert openlibrary.paths(robots=True) == ["/robots.txt"]
    assert lookup(client, FINAL_EMPIRE).json["status"] == "paused"


def test_a_failing_open_library_is_retried_and_one_asking_for_a_pause_pauses_its_own_fleet(
    redis, second_source, client, origin, openlibrary, run_jobs, run_fills
):
    settings = second_source(RETRY_MAX="1", RETRY_INTERVALS="0")
    origin.everyone("waf")
    openlibrary.answer_all_with = 500
    post(client, FINAL_EMPIRE)
    run_jobs()
    run_fills(settings)
    run_fills(settings)  # RQ's retry
    assert openlibrary.paths(robots=True).count("/search.json") == 2
    assert Counters(redis, settings.key_prefix).totals().second_source == {"failed": 2, "requests": 2}

    openlibrary.answer_all_with = 429
    post(client, BookId("424242"))
    run_jobs()
    run_fills(settings)
    health = redis.hgetall("goodreads:openlibrary:origin")
    assert health[b"state"] == b"rate_limit" and b"Open Library asked for a pause" in health[b"reason"]
    assert redis.hget("goodreads:origin", "state") == b"challenge"  # Goodreads' own state untouched


def test_goodreads_record_is_never_replaced_and_records_from_before_answer_goodreads(redis, settings, client):
    store = BookStore(redis, settings.key_prefix)
    old = {name: None for name in RECORD_FIELDS if name not in ("fetched_at", "source")}
    redis.set(store.record_key("7"), dumps_record({**old, "book_id": "7", "title": "Old"}))
    assert not store.save_second_source_record("7", {**old, "title": "Open Library's"}, "openlibrary")
    record = lookup(client, BookId("7")).json
    assert (record["title"], record["source"]) == ("Old", "goodreads")
    assert BookQueue(redis, settings).statuses([BookId("7"), BookId("8")]) == [
        ("stored", "goodreads"),
        ("unknown", None),
    ]


def test_the_fill_is_asked_once(redis: Redis, second_source, client, origin, run_jobs, run_due_jobs):
    settings = second_source()
    origin.everyone("waf")
    post(client, FINAL_EMPIRE)
    run_jobs()
    run_due_jobs()
    # On the control queue at once (the first fill's turn is now), or scheduled for its turn.
    waiting = job_queue(redis, settings.control_queue_name).job_ids
    scheduled = ScheduledJobRegistry(settings.control_queue_name, connection=redis).get_job_ids()
    assert waiting + scheduled == [f"openlibrary-{FINAL_EMPIRE}"]


def test_a_fill_whose_next_request_slot_is_too_far_waits_for_it(
    redis, second_source, client, origin, openlibrary, run_jobs, run_fills
):
    settings = second_source(OPENLIBRARY_RATE="0.01", FETCH_WAIT_MAX="0")
    redis.set("goodreads:openlibrary:robots", "")  # fetched before: no slot of its own now
    origin.everyone("waf")
    post(client, FINAL_EMPIRE)
    run_jobs()
    run_fills(settings)  # the search takes the first slot; the work's is 100 s away
    assert openlibrary.paths() == ["/search.json"]
    assert Counters(redis, settings.key_prefix).totals().second_source == {"deferred": 1, "requests": 1}
    registry = ScheduledJobRegistry(settings.control_queue_name, connection=redis)
    assert registry.get_job_ids() == [f"openlibrary-{FINAL_EMPIRE}"]
    assert lookup(client, FINAL_EMPIRE).json["status"] == "paused"


def test_while_open_library_is_paused_a_fill_sends_nothing_and_waits_for_its_probe(
    redis, second_source, client, origin, openlibrary, run_jobs, run_fills
):
    settings = second_source()
    redis.hset("goodreads:openlibrary:origin", mapping={"state": "rate_limit", "next_probe_at": 2e9})
    origin.everyone("waf")
    post(client, FINAL_EMPIRE)
    run_jobs()
    run_fills(settings)
    assert openlibrary.requests == []
    registry = ScheduledJobRegistry(settings.control_queue_name, connection=redis)
    assert registry.get_job_ids() == [f"openlibrary-{FINAL_EMPIRE}"]


def test_a_fill_asked_longer_ago_than_origin_pause_max_gives_up(
    redis, second_source, client, origin, openlibrary, run_jobs, run_fills
):
    settings = second_source(ORIGIN_PAUSE_MAX="0")
    origin.everyone("waf")
    post(client, FINAL_EMPIRE)
    run_jobs()  # paused past ORIGIN_PAUSE_MAX at once: blocked
    assert lookup(client, FINAL_EMPIRE).json["status"] == "blocked"
    run_fills(settings)
    assert openlibrary.requests == []
    assert lookup(client, FINAL_EMPIRE).status_code == 502


def test_a_find_without_a_title_is_no_match(redis, second_source, client, origin, openlibrary, run_jobs, run_fills):
    settings = second_source(RETRY_MAX="0")
    origin.everyone("signin")
    untitled = {"docs": [{"key": "/works/OL1W", "author_name": ["Someone"]}]}
    openlibrary.searches[FINAL_EMPIRE] = untitled
    post(client, FINAL_EMPIRE)
    run_jobs()
    run_fills(settings)
    assert lookup(client, FINAL_EMPIRE).json["status"] == "blocked"
    assert redis.hget(f"goodreads:status:{FINAL_EMPIRE}", "fallback") == b"none"
