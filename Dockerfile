# syntax=docker/dockerfile:1
# nexthink-bot in a container:
#   docker build -t nexthink-bot .
#   docker run --env-file .env -p 3000:3000 -v nexthink-bot-data:/data nexthink-bot
# Two stages: the builder installs the exact runtime versions of requirements/runtime.txt and
# then the project itself (no dependencies) into a virtual environment with uv; the runtime
# stage copies only that environment onto a slim Python and runs it as an unprivileged user.
# tests/test_dockerfile.py checks this file and runs the builder's commands outside Docker.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV VIRTUAL_ENV=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY requirements/ requirements/
# uv at the version pinned for development
RUN python -m pip install --quiet "$(grep '^uv==' requirements/dev.txt)"
# the pinned dependencies get their own layer, rebuilt only when requirements/runtime.txt changes
RUN uv venv --python python3 "$VIRTUAL_ENV" \
    && uv pip sync --strict --python "$VIRTUAL_ENV/bin/python" requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY bot/ bot/
COPY handlers/ handlers/
RUN uv pip install --no-deps --python "$VIRTUAL_ENV/bin/python" .

FROM ${PYTHON_IMAGE} AS runtime
# a numeric, unprivileged user (Kubernetes' runAsNonRoot can check it) owning the data volume
RUN groupadd --system --gid 10001 nexthink \
    && useradd --system --uid 10001 --gid nexthink --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin nexthink \
    && mkdir /data \
    && chown nexthink:nexthink /data
COPY --from=builder /opt/venv /opt/venv
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=3000 \
    DATABASE_URL=sqlite:////data/nexthink-bot.db \
    LOG_FORMAT=json
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 3000
# slim images have no curl: ask /healthz with the standard library
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)" || exit 1
# `docker stop` sends SIGTERM and waits 10 s: the bot drains and exits 0 within that
STOPSIGNAL SIGTERM
ENTRYPOINT ["nexthink-bot"]
CMD ["serve"]
