"""The status names the service answers with, as the client reads them.

The client is an HTTP client of the API and nothing else: it keeps its own copy of the names
the OpenAPI document lists (a book's ``status``, a batch link's ``status``), and a test holds
this copy to that document and to the service's own vocabulary, so they cannot drift apart.
"""

from __future__ import annotations

QUEUED = "queued"
RUNNING = "running"
RETRYING = "retrying"
PAUSED = "paused"
STORED = "stored"
NOT_FOUND = "not_found"
BLOCKED = "blocked"
FAILED = "failed"
UNKNOWN = "unknown"
# A link the service refused: a batch link's status, a POST result's outcome.
REJECTED = "rejected"

BOOK_STATUSES = (QUEUED, RUNNING, RETRYING, PAUSED, STORED, NOT_FOUND, BLOCKED, FAILED, UNKNOWN)
IN_PROGRESS = frozenset({QUEUED, RUNNING, RETRYING, PAUSED})
# Final states of a book without a record; sending the link again tries it again.
FINAL_FAILURES = frozenset({NOT_FOUND, BLOCKED, FAILED})
