# syntax=docker/dockerfile:1
# auditsvc container image: the API (`auditsvc serve`) and every CLI command.
#
#   docker build -t auditsvc:0.1.0 .
#   docker run --rm -p 8000:8000 auditsvc:0.1.0          # development: embedded PostgreSQL
#
# In a cluster the Helm chart (helm/auditsvc) runs it read-only, as uid 10001,
# with AUDITSVC_ENV=production and the database and keys from Secrets; see
# docs/operations.md.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: wheels of the SDK and the service, installed into a venv ----
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# The SDK first: it changes less often than the service, so its layer caches.
COPY sdk/ sdk/
RUN pip wheel --no-deps --wheel-dir /wheels ./sdk
COPY pyproject.toml README.md ./
COPY auditsvc/ auditsvc/
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip install /wheels/*.whl \
 && pip check

# ---- runtime: the venv, the migrations, no compiler, no build tools ----
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="auditsvc" \
      org.opencontainers.image.description="Append-only, hash-chained PHI access audit log" \
      org.opencontainers.image.licenses="Apache-2.0"

# AUDITSVC_MIGRATIONS_DIR: the alembic environment lives beside the venv, not
# in site-packages, where the settings' default would look for it.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AUDITSVC_DATA_DIR=/var/lib/auditsvc \
    AUDITSVC_MIGRATIONS_DIR=/app/migrations \
    AUDITSVC_HOST=0.0.0.0 \
    AUDITSVC_PORT=8000

RUN groupadd --system --gid 10001 auditsvc \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /var/lib/auditsvc --shell /usr/sbin/nologin auditsvc \
 && mkdir -p /var/lib/auditsvc \
 && chown 10001:10001 /var/lib/auditsvc \
 && chmod 0700 /var/lib/auditsvc

COPY --from=builder /opt/venv /opt/venv
COPY migrations/ /app/migrations/

# No .env here: pydantic-settings reads one from the working directory.
WORKDIR /app
USER 10001:10001
# A volume, so that a plain `docker run` keeps its embedded database and keys.
VOLUME ["/var/lib/auditsvc"]
EXPOSE 8000

# For docker and compose; Kubernetes uses the chart's probes instead.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('AUDITSVC_PORT', '8000'), timeout=2)"]

ENTRYPOINT ["auditsvc"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
