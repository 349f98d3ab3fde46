FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SEATS_ALEMBIC_INI=/app/alembic.ini

WORKDIR /app

COPY pyproject.toml README.md alembic.ini ./
COPY app/ ./app/
COPY migrations/ ./migrations/
RUN pip install --no-cache-dir .

# Unprivileged runtime user; /app/var is the only writable place (SQLite fallback).
RUN groupadd --system --gid 10001 seats \
    && useradd --system --uid 10001 --gid seats --no-create-home --shell /usr/sbin/nologin seats \
    && mkdir -p /app/var \
    && chown seats:seats /app/var
USER seats

EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["seats", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
