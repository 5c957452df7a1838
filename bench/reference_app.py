"""The lookup benchmark's reference: a bare Flask route answering a constant JSON body, either
a small one or, with ``create_app("record")``, the bytes a lookup of the fixture book answers
(so that the comparison leaves out what a larger answer costs to send)."""

import json

from flask import Flask, Response, jsonify


def record_body() -> bytes:
    """The fixture book's record as ``GET /getBookInfo`` answers it (its modules loaded here
    only: the constant reference stays a bare Flask process)."""
    from tests.origin import book_page
    from worker.parser import parse_book_page

    record = parse_book_page(book_page("100000"), "100000")
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def create_app(body: str = "constant") -> Flask:
    app = Flask(__name__)
    small = {"book_id": "1", "title": "A constant answer"}
    record = record_body() if body == "record" else b""

    @app.get("/getBookInfo")
    def constant():
        if body == "record":
            return Response(record, 200, mimetype="application/json")
        return jsonify(small)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return app
