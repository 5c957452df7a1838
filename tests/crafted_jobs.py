"""Jobs as someone with write access to Redis would write them: a hash in RQ's layout, pushed
straight onto a queue, with a pickle that runs a command as it loads, or naming a function
that is not one of the service's jobs."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

from redis import Redis
from rq.utils import now, utcformat


class TouchesWhenLoaded:
    """Unpickling this runs ``touch <path>``: a pickle that runs a command as it loads."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def pickle_that_touches(path: Path) -> bytes:
    return pickle.dumps(TouchesWhenLoaded(path))


def json_call(func: str, *args: object) -> bytes:
    """A job's call as the service writes one: ``[function, null, [args], {}]``."""
    return json.dumps([func, None, list(args), {}]).encode()


def write_job(redis: Redis, queue_name: str, job_id: str, data: bytes, **fields: str | int) -> None:
    """Write a job hash in RQ's layout and push it on the queue, as RQ's own enqueue would."""
    stamp = utcformat(now())
    redis.hset(
        f"rq:job:{job_id}",
        mapping={
            "data": data,
            "status": "queued",
            "origin": queue_name,
            "description": "crafted",
            "created_at": stamp,
            "enqueued_at": stamp,
            "timeout": 60,
            **fields,
        },
    )
    redis.sadd("rq:queues", f"rq:queue:{queue_name}")
    redis.rpush(f"rq:queue:{queue_name}", job_id)
