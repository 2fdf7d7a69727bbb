# newswatch worker image: `celery -A worker.app worker|beat` or `newswatch run`.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
RUN pip install '.[semantic]' && useradd --create-home --uid 10001 newswatch
COPY config ./config
COPY seeds ./seeds
RUN mkdir -p /app/var && chown newswatch /app/var
USER newswatch
ENV NEWSWATCH_CONFIG=/app/config/newswatch.yaml
CMD ["newswatch", "run"]
