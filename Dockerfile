# The image both the web and the worker services run (docker-compose.yml picks the command).

# The locked default packages as a pip requirements list with their hashes. pipenv stays in
# this stage: installed beside the service, its own dependencies would supply a package the
# lock lacks, and hide it.
FROM python:3.11-slim AS requirements
WORKDIR /src
COPY Pipfile Pipfile.lock ./
RUN pip install --no-cache-dir pipenv==2026.10.3 \
    && pipenv requirements --hash > requirements.txt

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/srv \
    PORT=5000

WORKDIR /srv

# Dependencies first, exactly as locked and nothing else (--no-deps: what the lock lacks is
# missing here too, as .ci/check_run_command.py checks), so code changes do not reinstall them.
COPY --from=requirements /src/requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --no-deps --require-hashes -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY app ./app
COPY books ./books
COPY worker ./worker
COPY Procfile gunicorn.conf.py ./

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin books
USER 10001

EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/healthz', timeout=4)"]
CMD ["gunicorn", "--config", "gunicorn.conf.py"]
