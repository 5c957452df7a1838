"""``python -m tests.first_time_work``: the worker's main process as ``rq worker`` prepares it
(``worker.rq_settings``), then a burst ``BookWorker`` whose work horses each count the
first-time work their job did, and push the counts to the Redis list ``first-time-work``.

First-time work is what is built lazily once per process: a regex compiled (``re`` caches
what it compiles, soupsieve compiles its tokenizer's on first use), a CSS selector compiled
(soupsieve's cache), BeautifulSoup's HTML entity tables, a module imported, a source file
read for a traceback (``linecache``, when a job fails). A horse that did none started from
a parent that had built them all. Counted, not timed: the machine's load
changes times, not counts.
"""

from __future__ import annotations

import importlib
import json
import linecache
import re._compiler
import sys
from typing import Any

import soupsieve.css_parser
from bs4.dammit import EntitySubstitution
from rq.job import Job
from rq.queue import Queue

from worker import context
from worker.connection import WorkerRedis
from worker.rq_worker import BookWorker

KEY = "first-time-work"
_compiled = 0
_compile = re._compiler.compile


def _counting_compile(pattern: Any, flags: int = 0) -> Any:
    global _compiled
    _compiled += 1
    return _compile(pattern, flags)


def first_time_work() -> dict[str, int]:
    """What this process has built lazily so far, counted."""
    return {
        "regexes": _compiled,
        "css_selectors": soupsieve.css_parser._cached_css_compile.cache_info().misses,
        "entity_tables": int(EntitySubstitution._CLASS_VARIABLES_POPULATED),
        "modules": len(sys.modules),
        "source_files": len(linecache.cache),
    }


class CountingWorker(BookWorker):
    def subscribe(self) -> None:
        """No command channel: a burst run takes no commands, and redis-py would wait up to a
        minute for the channel's listener to notice the unsubscribe."""

    def perform_job(self, job: Job, queue: Queue, execution: Any) -> bool:
        before = first_time_work()
        try:
            return super().perform_job(job, queue, execution)
        finally:
            after = first_time_work()
            counts = {name: after[name] - before[name] for name in after}
            self.connection.rpush(KEY, json.dumps({"job": job.id, **counts}))


def main() -> None:
    importlib.import_module("worker.rq_settings")  # the worker's preloading, ending in gc.freeze()
    re._compiler.compile = _counting_compile
    settings = context.settings()
    redis = WorkerRedis.from_url(settings.redis_url)
    CountingWorker([settings.queue_name], connection=redis).work(burst=True)


if __name__ == "__main__":
    main()
