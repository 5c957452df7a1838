"""The dashboard's pages as the app serves them: every value its underscore templates insert is
escaped (``<%- %>``), but for those that escape it themselves."""

from __future__ import annotations

import re

import pytest

from app.dashboard_escaping import escape_interpolations

SELF_ESCAPING = "<%= $('<div/>').text(d.description).html() %>"


def test_a_raw_interpolation_becomes_an_escaping_one_and_a_self_escaping_one_is_kept():
    source = "<div><%= d.description %></div><pre><%=d.exc_info%></pre>" + SELF_ESCAPING + "<%- d.name %><% if (d) { %>"
    assert escape_interpolations(source) == (
        "<div><%- d.description %></div><pre><%-d.exc_info%></pre>" + SELF_ESCAPING + "<%- d.name %><% if (d) { %>"
    )


@pytest.mark.parametrize("view", ["job/book-1", "workers", "queues", "jobs"])
def test_the_dashboards_pages_insert_no_value_unescaped(client, view):
    client.post("/parseGoodreadsLinks", json=["goodreads.com/book/show/1"])
    response = client.get(
        f"/rqstatus/0/view/{view}", follow_redirects=True
    )  # the test client is on loopback: no credentials needed
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<%-" in page
    raw = re.findall(r"<%=.{0,40}", page)
    assert all(found.startswith("<%= $('<div/>').text(") for found in raw), raw


def test_the_page_of_a_job_that_does_not_exist_is_a_json_404(client):
    response = client.get("/rqstatus/0/view/job/book-404")
    assert (response.status_code, response.json["error"]) == (404, "unknown_job")
