"""The operator's own Goodreads session: a Netscape cookies.txt (``GOODREADS_COOKIES_FILE``).

Only the cookies of the origin's host are kept, so no other host could ever receive one
(and the fetcher requests no other host). The file is read again when its mtime
changes, so a refreshed export takes effect at the next book without a restart. The
cookie values are secrets: they are never logged, never put in a reason or a record.
"""

from __future__ import annotations

import logging
import os
from http.cookiejar import CookieJar
from urllib.parse import urlsplit

import requests

from books.settings import ConfigError, Settings, load_cookies

log = logging.getLogger(__name__)


def for_host(jar: CookieJar, host: str) -> CookieJar:
    """The cookies of ``jar`` that a request to ``host`` may carry (by their domain). An expiry
    of 0 is how browsers export a session cookie: it stays for the session, not expired."""
    kept = CookieJar()
    for cookie in jar:
        domain = cookie.domain.lstrip(".").lower()
        if host == domain or host.endswith(f".{domain}"):
            if cookie.expires == 0:
                cookie.expires, cookie.discard = None, True
            kept.set_cookie(cookie)
    return kept


class SessionCookies:
    """Keeps a session's cookies equal to the cookies file's, for the origin's host."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.goodreads_cookies_file
        self.host = (urlsplit(settings.origin).hostname or "").lower()
        self.loaded_mtime: float | None = None
        self.count = 0

    @property
    def in_use(self) -> bool:
        """Whether requests to the origin carry the operator's cookies."""
        return self.count > 0

    def refresh(self, session: requests.Session) -> None:
        """Load the file into the session if it changed since it was last loaded. A file
        that became unreadable or malformed keeps the cookies loaded before, with a warning
        (the service checked it at start, so an operator is editing it)."""
        if not self.path:
            return
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError as error:
            log.warning("GOODREADS_COOKIES_FILE cannot be read (%s); keeping the cookies loaded before", error.strerror)
            return
        if mtime == self.loaded_mtime:
            return
        try:
            jar = for_host(load_cookies(self.path), self.host)
        except ConfigError as error:
            log.warning("%s; keeping the cookies loaded before", error)
            return
        session.cookies.clear()
        for cookie in jar:
            session.cookies.set_cookie(cookie)
        self.loaded_mtime, self.count = mtime, len(jar)
