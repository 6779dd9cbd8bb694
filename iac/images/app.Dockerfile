# The seclab app and Celery worker image (context: repository root).
# Pinned base (CIS 4.x); non-root user 10001 owns only its log directory (CIS 4.1).
FROM python:3.12.8-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN groupadd --system --gid 10001 seclab \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin seclab \
 && install -d -o 10001 -g 10001 -m 0750 /var/log/seclab
WORKDIR /opt/seclab/src
COPY pyproject.toml README.md ./
COPY labdef ./labdef
COPY app ./app
COPY pki ./pki
# The log search tools (index template, pipelines, keeper) the logsearch-keeper container runs.
COPY logsearch ./logsearch
# celery is the worker's runtime (app.worker.celery_app); pinned like every dependency.
RUN pip install --no-compile . "celery[redis]==5.4.0"
USER 10001:10001
EXPOSE 8000
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"]
