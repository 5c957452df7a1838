"""The worker's main process builds what the job's libraries build lazily (worker/warmup.py), so
a work horse builds none of it again: every page kind, fetched, parsed and stored (or refused)
by the real job in a real horse, costs it no regex, CSS selector or entity table compiled, no
module imported, no source file read for a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from books.queue import BookQueue
from books.settings import Settings
from books.status import BookStatus
from tests.first_time_work import KEY
from tests.origin import FIXTURES
from tests.processes import ROOT, Service
from worker.parser import parse_book_page
from worker.warmup import SAMPLE_PAGES

SHARED_PAGES = ROOT.parent / "shared" / "goodreads-pages" / "pages"

# What each warm-up page must reach: the parts of its layout read with BeautifulSoup or a
# selector (a page that stopped reaching one would leave it to the horses).
REACHED = {
    "current layout (__NEXT_DATA__)": ("description", "published", "series", "awards", "characters"),
    "current layout (JSON-LD and markup)": (
        "description",
        "first_published",
        "series",
        "genres",
        "rating_distribution",
    ),
    "legacy layout": ("description", "publisher", "series_list", "awards", "characters", "places", "genres", "pages"),
}


@pytest.mark.parametrize(("page", "fields"), list(zip(SAMPLE_PAGES, REACHED.values(), strict=True)), ids=list(REACHED))
def test_each_warm_up_page_reads_as_a_book_with_every_part_its_parser_reads(page: bytes, fields):
    record = parse_book_page(page, "1")
    assert isinstance(record, dict)
    assert "&" in (record["description"] or ""), "an entity, decoded"
    assert all(record[field] for field in fields), {field: record[field] for field in fields}


def every_page_kind() -> list[bytes]:
    """The project's fixture pages, and the real pages when ../shared is there."""
    pages = sorted(FIXTURES.glob("*.html")) + sorted(SHARED_PAGES.glob("*.html") if SHARED_PAGES.exists() else [])
    return [path.read_bytes() for path in pages]


def horses_first_time_work(redis, redis_server, origin, tmp_path: Path, **settings: str) -> list[dict]:
    """One book per page kind through a burst worker prepared as ``rq worker`` prepares it,
    each in its own horse; what each horse built lazily."""
    pages = every_page_kind()
    origin.page = lambda book_id: pages[int(book_id) - 1]
    books = [str(n + 1) for n in range(len(pages))]
    env = Service(redis_server.url, origin.url, tmp_path, **settings).env
    queue = BookQueue(redis, Settings.from_env(env))
    queue.enqueue_books(books)
    subprocess.run([sys.executable, "-m", "tests.first_time_work"], cwd=ROOT, env=env, check=True, timeout=120)
    states = queue.states(books)
    assert BookStatus.STORED in {state.status for state in states.values()}
    return [json.loads(entry) for entry in redis.lrange(KEY, 0, -1)]


@pytest.mark.e2e
def test_a_horse_builds_nothing_its_worker_could_have_built(redis, redis_server, origin, tmp_path):
    counts = horses_first_time_work(redis, redis_server, origin, tmp_path)
    assert len(counts) == len(every_page_kind())
    built = [entry for entry in counts if any(value for name, value in entry.items() if name != "job")]
    assert built == []


@pytest.mark.e2e
def test_without_the_warm_up_the_horses_build_them_and_the_count_shows_it(redis, redis_server, origin, tmp_path):
    counts = horses_first_time_work(redis, redis_server, origin, tmp_path, WORKER_WARM_UP="false")
    assert sum(entry["entity_tables"] for entry in counts) >= 1
    assert sum(entry["css_selectors"] for entry in counts) >= 10
    assert sum(entry["regexes"] for entry in counts) >= 10
    assert sum(entry["source_files"] for entry in counts) >= 3, "the refused pages' tracebacks"
