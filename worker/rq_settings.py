"""Settings module for ``rq worker -c worker.rq_settings`` (RQ reads its UPPERCASE names).

Importing it also preloads the job's modules (parser, BeautifulSoup, lxml, requests)
in the worker's main process, so each forked work horse starts with them loaded
instead of importing them again for every job.
"""

import worker.tasks  # noqa: F401  (preload for the forked work horses)
from app.config import Settings

_settings = Settings.from_env()

REDIS_URL = _settings.redis_url
QUEUES = [_settings.queue_name]
DICT_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "plain",
                            "stream": "ext://sys.stdout"}},
    "root": {"level": "INFO", "handlers": ["stdout"]},
}
