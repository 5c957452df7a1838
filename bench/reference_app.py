"""The lookup benchmark's reference: a bare Flask route answering a constant JSON body."""

from flask import Flask, jsonify


def create_app() -> Flask:
    app = Flask(__name__)
    body = {"book_id": "1", "title": "A constant answer"}

    @app.get("/getBookInfo")
    def constant():
        return jsonify(body)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return app
