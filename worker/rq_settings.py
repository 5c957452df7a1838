"""Settings module for ``rq worker -c worker.rq_settings`` (RQ reads its UPPERCASE names).

Importing it also preloads the job's modules (parser, BeautifulSoup, lxml, requests)
and makes the job's settings and fetching session in the worker's main process, so
each forked work horse starts with them ready instead of making them again for every
job. Then ``gc.freeze()`` puts every object made so far out of the cyclic collector's
reach: a horse's collections no longer walk the preloaded modules, so they no longer
write to (and copy) the pages those live on.
"""

import gc

from books.logs import LOGGING
from books.settings import stop_on_config_error
from worker import tasks

with stop_on_config_error():
    _settings = tasks.settings()
tasks.session()

REDIS_URL = _settings.redis_url
QUEUES = [_settings.queue_name]
# JSON lines on stdout, as the web writes them.
DICT_CONFIG = LOGGING

gc.freeze()
