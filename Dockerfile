# Images of the KCC services, built from the repository root:
#
#   docker build --target intake      -t kcc/intake:0.1.0 .
#   docker build --target backoffice  -t kcc/backoffice:0.1.0 .
#   docker build --target router      -t kcc/router:0.1.0 .
#   docker build --target sla-monitor -t kcc/sla-monitor:0.1.0 .
#
# (`docker compose build` does all four.) Every image holds the whole `kcc` command; a target
# only picks the default command, the ports and the health check. See docs/deployment.md.

# Pinned by exact version. Bump deliberately (and pin by digest where the registry is trusted).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

# The same uv that wrote uv.lock, from PyPI.
RUN python -m pip install --no-cache-dir --disable-pip-version-check uv==0.13.9

ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lock file or a pyproject.toml
# changes, not on every source edit.
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/
COPY services/intake/pyproject.toml services/intake/
COPY services/router/pyproject.toml services/router/
COPY services/backoffice/pyproject.toml services/backoffice/
COPY services/sla-monitor/pyproject.toml services/sla-monitor/
COPY cli/pyproject.toml cli/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace

# Then the project itself, installed as wheels (--no-editable): the runtime image needs the
# virtual environment only, not the sources next to it.
COPY shared/src shared/src
COPY services/intake/src services/intake/src
COPY services/router/src services/router/src
COPY services/backoffice/src services/backoffice/src
COPY services/sla-monitor/src services/sla-monitor/src
COPY cli/src cli/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

RUN groupadd --system --gid 10001 kcc \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin kcc

COPY --from=build /app/.venv /app/.venv
WORKDIR /app

# KCC_METRICS_HOST: a consumer's /metrics, /healthz and /readyz must be reachable from outside
# the container (Prometheus, the probes).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KCC_METRICS_HOST=0.0.0.0

LABEL org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.vendor="KCC kennisvragen"

# Health checks ask /readyz (database and broker reachable), because Docker uses the status
# only to order start-up (depends_on: service_healthy) and to show it; it never restarts a
# container for it. Each reads the port from the variable the process binds to, so changing
# KCC_HTTP_BIND or KCC_METRICS_PORT keeps the check right. python, because slim images have no
# curl.

# ---------------------------------------------------------------------------------------------
FROM runtime AS intake
LABEL org.opencontainers.image.title="kcc/intake" \
      org.opencontainers.image.description="KCC intake: API and agent desk (kcc intake serve); also runs kcc intake consume"
ENV KCC_HTTP_BIND=0.0.0.0:8001
EXPOSE 8001 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = (os.environ.get('KCC_HTTP_BIND') or '0.0.0.0:8001').rpartition(':')[2].strip(); urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=4)"]
USER 10001:10001
CMD ["kcc", "intake", "serve"]

# ---------------------------------------------------------------------------------------------
FROM runtime AS backoffice
LABEL org.opencontainers.image.title="kcc/backoffice" \
      org.opencontainers.image.description="KCC back office: API and inbox pages (kcc backoffice serve); also runs kcc backoffice consume"
ENV KCC_HTTP_BIND=0.0.0.0:8002
EXPOSE 8002 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = (os.environ.get('KCC_HTTP_BIND') or '0.0.0.0:8002').rpartition(':')[2].strip(); urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=4)"]
USER 10001:10001
CMD ["kcc", "backoffice", "serve"]

# ---------------------------------------------------------------------------------------------
FROM runtime AS router
LABEL org.opencontainers.image.title="kcc/router" \
      org.opencontainers.image.description="KCC router: routes questions to departments (kcc router run)"
EXPOSE 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = (os.environ.get('KCC_METRICS_PORT') or '9100').strip(); urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=4)"]
USER 10001:10001
CMD ["kcc", "router", "run"]

# ---------------------------------------------------------------------------------------------
FROM runtime AS sla-monitor
LABEL org.opencontainers.image.title="kcc/sla-monitor" \
      org.opencontainers.image.description="KCC SLA monitor: SLA page and summary API (kcc sla serve); also runs kcc sla run (clocks, warnings, metrics)"
ENV KCC_HTTP_BIND=0.0.0.0:8003
EXPOSE 8003 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = (os.environ.get('KCC_HTTP_BIND') or '0.0.0.0:8003').rpartition(':')[2].strip(); urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=4)"]
USER 10001:10001
CMD ["kcc", "sla", "serve"]
