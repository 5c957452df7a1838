"""Settings module for ``rq worker -c worker.rq_settings`` (RQ reads its UPPERCASE names).

Importing it also preloads the job's modules (parser, BeautifulSoup, lxml, requests),
makes the job's settings and fetching session in the worker's main process, and builds
what the parser's libraries build lazily (worker/warmup.py), so each forked work horse
starts with them ready instead of making them again for every job. Then ``gc.freeze()``
puts every object made so far out of the cyclic collector's reach: a horse's collections
no longer walk the preloaded modules, so they no longer write to (and copy) the pages
those live on.

The worker serves the control queue, then the book queue, then the refresh queue: RQ
takes a job from the first queue in the list that has one. At start it also makes sure
the periodic jobs (refresh rounds, callback checks) are scheduled, and, once, carries the
jobs an earlier version queued pickled over to JSON (worker/jobs.py).
"""

import gc
import logging

from redis.exceptions import RedisError

import worker.tasks  # noqa: F401 (the job's modules, preloaded for the work horses)
from books.logs import LOGGING
from books.redis_client import redis_client
from books.settings import stop_on_config_error
from worker import callbacks, context, refresh, warmup
from worker.jobs import migrate_pickled_jobs

with stop_on_config_error():
    _settings = context.settings()
context.session()
if _settings.worker_warm_up:
    warmup.warm()

# RQ makes its connection with WorkerRedis.from_url(REDIS_URL), which with REDIS_SENTINELS set
# connects to the master the sentinels name (so RQ's own SENTINEL setting is not used).
REDIS_URL = _settings.redis_url
QUEUES = _settings.worker_queues
# JSON lines on stdout, as the web writes them.
DICT_CONFIG = LOGGING

try:
    with redis_client(_settings, socket_connect_timeout=_settings.redis_socket_timeout) as _redis:
        _rewritten, _failed = migrate_pickled_jobs(_redis, _settings)
        if _rewritten or _failed:
            logging.getLogger(__name__).warning(
                "jobs queued pickled by an earlier version: %d carried over to JSON, %d failed", _rewritten, _failed
            )
        refresh.schedule_round(_redis, _settings)
        callbacks.schedule_check(_redis, _settings)
except RedisError as error:  # the worker itself waits for Redis; a later run does this
    logging.getLogger(__name__).warning("could not carry jobs over or schedule the periodic jobs: %s", error)

gc.freeze()
