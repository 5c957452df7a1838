"""The origin's robots.txt, fetched by one worker, kept in Redis for all, honoured by each.

``<prefix>:origin:robots`` holds the text (empty when the origin has none: a 4xx other
than 401, 403 and 429 allows everything) and expires after ``ROBOTS_MAX_AGE``, so it is
fetched again at least that often. While it is missing, one worker fetches it (a lock)
and the others wait for its copy. No answer, a 5xx, a challenge, a refusal, a 429, or a
body that does not come whole within the page's read deadline is the origin's trouble
(``OriginTrouble``), and pauses the fleet like a book page's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast
from urllib.robotparser import RobotFileParser

import requests
from redis import Redis

from books.origin import OriginState
from books.settings import Settings
from worker.fetch import AttemptFailed, OriginTrouble, fetch, origin_trouble, read_answer
from worker.ratelimit import FetchRateLimiter

# What is read of robots.txt; the rest is ignored (RFC 9309 asks crawlers for at least 500 KiB).
MAX_ROBOTS_BYTES = 512 * 1024


def robots_key(prefix: str) -> str:
    return f"{prefix}:origin:robots"


def parse_robots(text: str) -> RobotFileParser:
    parser = RobotFileParser()
    parser.parse(text.splitlines())
    return parser


class Robots:
    """robots.txt of an origin for this service's user agent: Goodreads' unless another
    ``origin`` is given, with its own ``key`` and ``site`` name."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        origin: str | None = None,
        key: str | None = None,
        site: str = "Goodreads",
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.origin = origin or settings.origin
        self.key = key or robots_key(settings.key_prefix)
        self.lock_key = f"{self.key}:lock"
        self.site = site

    def rules(self, session: requests.Session, limiter: FetchRateLimiter, admit: Callable[[], None]) -> RobotFileParser:
        """The cached rules, fetching them first when there are none (one worker at a time)."""
        lock_seconds = int(self.settings.fetch_connect_timeout + self.settings.fetch_read_timeout) + 5
        deadline = time.monotonic() + 2 * lock_seconds
        while True:
            cached = self.redis.get(self.key)
            if cached is not None:
                return parse_robots(cast(bytes, cached).decode("utf-8", "replace"))
            if self.redis.set(self.lock_key, 1, nx=True, ex=lock_seconds):
                try:
                    text = self._fetch(session, limiter, admit)
                    self.redis.set(self.key, text, ex=self.settings.robots_max_age)
                finally:
                    self.redis.delete(self.lock_key)
                return parse_robots(text)
            if time.monotonic() > deadline:
                raise OriginTrouble(OriginState.UNREACHABLE, f"{self.site} is unreachable: robots.txt did not come")
            time.sleep(0.1)

    def _fetch(self, session: requests.Session, limiter: FetchRateLimiter, admit: Callable[[], None]) -> str:
        url = f"{self.origin}/robots.txt"
        with fetch(url, self.settings, session, limiter, admit, self.site) as response:
            try:
                answer = read_answer(response, url, self.settings, MAX_ROBOTS_BYTES, truncate=True, site=self.site)
            except AttemptFailed as failure:  # a robots.txt that trickles or breaks off is the origin's trouble
                raise OriginTrouble(
                    OriginState.UNREACHABLE, f"{self.site} is unreachable: robots.txt: {failure.reason}"
                ) from None
        trouble = origin_trouble(answer, self.site)
        if trouble:
            raise trouble
        if answer.status >= 500 or 300 <= answer.status < 400:
            raise OriginTrouble(
                OriginState.UNREACHABLE, f"{self.site} is unreachable: robots.txt answered HTTP {answer.status}"
            )
        return answer.body.decode("utf-8", "replace") if answer.status == 200 else ""
