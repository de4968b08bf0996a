# Learning Companion: one `companion serve` process per container (README: "Past one machine").
# Build: docker build -t learning-companion .   Run several against one PostgreSQL: compose.yaml.
FROM python:3.12-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY core ./core
COPY prompts ./prompts
COPY migrations ./migrations

# The same install as the README's first command, in the image's own virtual environment.
RUN python3 -m venv .venv && .venv/bin/pip install --no-cache-dir -e .

# Listen on every interface of the container; the port compose.yaml maps.
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    COMPANION_HTTP_HOST=0.0.0.0 \
    COMPANION_HTTP_PORT=8080
EXPOSE 8080

# /healthz answers within a second, 503 with the problem when the database does not answer.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

# SIGTERM finishes the work in hand (serve's docstring); migrations run once under serve's lock.
STOPSIGNAL SIGTERM
CMD ["companion", "serve"]
