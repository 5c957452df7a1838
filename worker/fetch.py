"""Polite HTTP to Goodreads: only book pages, rate-limited, bounded in time and size.

The URL is always built here from a validated book id; a redirect is followed
only to another book page on the same origin. Anything else comes back as a
``AttemptFailed`` that says whether Goodreads blocked us or the fetch failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import ReadTimeoutError

from books.links import BookId, Refusal, canonical_url, parse_book_path
from books.settings import Settings
from books.status import BookStatus
from worker.ratelimit import FetchRateLimiter

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class OriginResponse:
    status: int
    body: bytes
    retry_after: float | None
    url: str


class AttemptFailed(Exception):
    """This attempt at a book produced no record: Goodreads ``blocked`` us, or the fetch or
    the page ``failed``; ``retry_after`` is the pause the origin asked for, if any."""

    def __init__(self, status: BookStatus, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


def new_session(settings: Settings) -> requests.Session:
    """A session that says who it is and takes no proxies or credentials from the environment."""
    session = requests.Session()
    session.headers.update(
        {
            "User-Agent": settings.user_agent,
            "Accept": "text/html,application/xhtml+xml",
            "Accept-Language": "en-US,en;q=0.8",
        }
    )
    session.trust_env = False  # no proxies or .netrc from the environment
    return session


def fetch_book_page(
    book_id: BookId, settings: Settings, session: requests.Session, limiter: FetchRateLimiter
) -> OriginResponse:
    """GET the book's page from the configured origin, following same-origin book redirects."""
    url = canonical_url(book_id, settings.origin)
    for _hop in range(settings.max_redirects + 1):
        limiter.wait_for_slot()
        response = _get(session, url, settings)
        with response:
            if not response.is_redirect:
                body = _read_capped(response, settings)
                return OriginResponse(
                    response.status_code, body, parse_retry_after(response.headers.get("Retry-After")), url
                )
            url = _allowed_redirect(url, response.headers.get("Location", ""), settings)
    raise AttemptFailed(BookStatus.FAILED, f"more than {settings.max_redirects} redirects")


def _get(session: requests.Session, url: str, settings: Settings) -> requests.Response:
    try:
        return session.get(
            url,
            allow_redirects=False,
            stream=True,
            timeout=(settings.fetch_connect_timeout, settings.fetch_read_timeout),
        )
    except requests.Timeout:
        raise AttemptFailed(BookStatus.FAILED, "Goodreads did not answer in time") from None
    except requests.RequestException as error:
        raise AttemptFailed(BookStatus.FAILED, f"connection to Goodreads failed: {type(error).__name__}") from None


def _read_capped(response: requests.Response, settings: Settings) -> bytes:
    """The body, refusing one over MAX_PAGE_BYTES or one that trickles past the read timeout."""
    deadline = time.monotonic() + settings.fetch_connect_timeout + settings.fetch_read_timeout
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > settings.max_page_bytes:
        raise AttemptFailed(BookStatus.FAILED, f"the page is larger than {settings.max_page_bytes} bytes")
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(_CHUNK):
            size += len(chunk)
            if size > settings.max_page_bytes:
                raise AttemptFailed(BookStatus.FAILED, f"the page is larger than {settings.max_page_bytes} bytes")
            if time.monotonic() > deadline:
                raise AttemptFailed(BookStatus.FAILED, "Goodreads sent the page too slowly")
            chunks.append(chunk)
    except requests.RequestException as error:
        if isinstance(error.args[0] if error.args else None, ReadTimeoutError):
            raise AttemptFailed(BookStatus.FAILED, "Goodreads stopped sending the page (read timeout)") from None
        raise AttemptFailed(BookStatus.FAILED, f"the page was cut off: {type(error).__name__}") from None
    return b"".join(chunks)


def _allowed_redirect(current: str, location: str, settings: Settings) -> str:
    target = urljoin(current, location)
    parts, origin = urlsplit(target), urlsplit(settings.origin)
    if (parts.scheme, parts.netloc) != (origin.scheme, origin.netloc):
        raise AttemptFailed(BookStatus.BLOCKED, f"Goodreads redirected to another host ({parts.netloc or 'none'})")
    if isinstance(parse_book_path(parts.path), Refusal):
        raise AttemptFailed(BookStatus.BLOCKED, f"Goodreads redirected to {parts.path!r}, not a book page")
    return f"{settings.origin}{parts.path}"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
