# syntax=docker/dockerfile:1.7
#
# One image for the five services and chatctl; the command picks the service
# (`chat-gateway`, `chat-orchestrator`, `chat-llm-worker`, `chat-tools`, `chat-history`,
# `chatctl db upgrade`). docs/deploy.md says why one image rather than five.
#
#   docker build -t agentchat:dev .
#
# Needs BuildKit (the default builder since Docker 23).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# -- The chat page (web/), built by its own npm scripts. --------------------------------------
# Until web/package.json exists, `web*` matches nothing (BuildKit copies nothing for a wildcard
# without a match) and this stage yields an empty dist/: the gateway then says the page is not
# built instead of serving it.
FROM ${NODE_IMAGE} AS web
WORKDIR /web
COPY web*/package.json web*/package-lock.json ./
RUN if [ -f package.json ]; then npm ci --no-audit --no-fund; fi
COPY web* ./
RUN mkdir -p dist && if [ -f package.json ]; then npm run build; fi

# -- The Python workspace, installed from uv.lock into /app/.venv. ----------------------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_FROZEN=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock or a member's pyproject changes.
COPY pyproject.toml uv.lock ./
COPY packages/chat-contracts/pyproject.toml packages/chat-contracts/
COPY packages/chat-runtime/pyproject.toml packages/chat-runtime/
COPY packages/chat-devtools/pyproject.toml packages/chat-devtools/
COPY packages/chatctl/pyproject.toml packages/chatctl/
COPY services/gateway/pyproject.toml services/gateway/
COPY services/orchestrator/pyproject.toml services/orchestrator/
COPY services/llm-worker/pyproject.toml services/llm-worker/
COPY services/tools/pyproject.toml services/tools/
COPY services/history/pyproject.toml services/history/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-dev --no-install-workspace
# Then the workspace's own packages. They stay where they are in the repository (installed in
# place): the services find their Alembic migrations (services/*/migrations) and the gateway
# finds the chat page (web/dist) relative to their source, as in a checkout.
COPY packages/ packages/
COPY services/ services/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-dev && python -m compileall -q packages services

# -- Runtime: Python, the virtualenv and the sources; no uv, no node, no compiler. -----------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="agentchat" \
      org.opencontainers.image.description="Agent chat: gateway, orchestrator, llm-worker, tools, history, chatctl"
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app
WORKDIR /app
# Owned by root, so the service user can read the code but not change it.
COPY --from=build /app /app
COPY --from=web /web/dist /app/web/dist
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
# The gateway's HTTP/WebSocket port; every other service's health port (HEALTH_PORT).
EXPOSE 8000 8080
CMD ["chat-gateway"]
