"""What a worker process makes once and every job in it uses: its settings, its fetching
session, and the operator's cookies as last loaded into that session.

worker.rq_settings makes it in the worker's main process, so every work horse RQ forks
starts from a copy of the same one: no book's cookies or connections reach another, and no
horse pays for making it. Tests put one of their own in its place (``use``) instead of
clearing caches here and there.
"""

from __future__ import annotations

from functools import cached_property

import requests

from books.settings import Settings
from worker.cookies import SessionCookies
from worker.fetch import new_session


class WorkerContext:
    """The settings, and the session and its cookies, made when first asked for."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cookies = SessionCookies(settings)

    @cached_property
    def session(self) -> requests.Session:
        """The fetching session, with the cookies file loaded into it."""
        fresh = new_session(self.settings)
        self.cookies.refresh(fresh)
        return fresh


_current: WorkerContext | None = None


def current() -> WorkerContext:
    """This process's context, made from the environment the first time it is asked for."""
    global _current
    if _current is None:
        _current = WorkerContext(Settings.from_env())
    return _current


def use(context: WorkerContext | None) -> None:
    """Make ``context`` this process's; None: make it again from the environment when next asked."""
    global _current
    _current = context


def settings() -> Settings:
    return current().settings


def session() -> requests.Session:
    return current().session


def cookies() -> SessionCookies:
    """The operator's cookies file, as last loaded into ``session()``."""
    return current().cookies
