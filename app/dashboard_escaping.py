"""rq-dashboard's pages, with every value its client-side templates insert escaped.

rq-dashboard (0.9.0, its issue #526) fills the job page, and parts of the worker list, with
underscore.js templates whose ``<%= … %>`` inserts a value as HTML: a job's description,
metadata or exception text holding markup (a callback URL, an error message quoting the
origin, a page's title) would run as script in an operator's browser, with the dashboard's
rights. The app reads the dashboard's templates through ``EscapingTemplates``, which turns
each ``<%= … %>`` into underscore's escaping ``<%- … %>``, but for the ones that escape their
value themselves (``$('<div/>').text(…).html()``), which would otherwise show entities.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from flask import Flask
from jinja2 import BaseLoader, Environment

# An underscore interpolation that inserts its value as HTML, unless it escapes it itself.
RAW_INTERPOLATION = re.compile(r"<%=(?!\s*\$\('<div/>'\)\.text\()")


def escape_interpolations(source: str) -> str:
    """``source`` with every raw underscore interpolation made an escaping one."""
    return RAW_INTERPOLATION.sub("<%-", source)


class EscapingTemplates(BaseLoader):
    """The templates of ``loader``, each passed through ``escape_interpolations``."""

    def __init__(self, loader: BaseLoader) -> None:
        self.loader = loader

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = self.loader.get_source(environment, template)
        return escape_interpolations(source), filename, uptodate

    def list_templates(self) -> list[str]:
        return self.loader.list_templates()


def escape_dashboard_values(app: Flask, dashboard_templates: BaseLoader) -> None:
    """Have ``app`` render the dashboard's templates escaped: Flask looks in the app's own loader
    first (the app has no templates of its own), then in the blueprint's, unchanged."""
    app.jinja_loader = EscapingTemplates(dashboard_templates)
