"""Every answer is JSON, in process: Flask's routing redirects, and each link echoed as it was sent."""

from __future__ import annotations

import pytest

BOOK = "https://www.goodreads.com/book/show/5907"


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/rqstatus", "/rqstatus/"),  # the trailing slash of a blueprint's root
        ("/batches//books", "/batches/books"),  # doubled slashes merged
        ("/rqstatus?x=1", "/rqstatus/?x=1"),
    ],
)
def test_routing_redirects_answer_json_and_keep_308_and_location(client, path, location):
    response = client.get(path)
    assert response.status_code == 308
    assert response.headers["Location"] == f"http://localhost{location}"
    assert response.is_json, response.data[:200]
    assert response.json == {"error": "permanent_redirect", "message": f"the resource is at http://localhost{location}"}


def test_a_routing_redirect_is_followed_to_the_page(client):
    response = client.get("/rqstatus", follow_redirects=True)
    assert response.status_code == 200
    assert [(r.status_code, r.request.path) for r in response.history] == [(308, "/rqstatus")]
    assert response.request.path == "/rqstatus/"
