# Production image: gunicorn on Python 3.11 slim, non-root, static files collected at build.
# Configure with the environment (README "Configuration"); DATABASE_URL, REDIS_URL,
# DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS and GERION_JWT_SIGNING_KEY are required in production.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GERION_BIND=0.0.0.0:8000 \
    GERION_DATA_DIR=/app/var

WORKDIR /app
RUN groupadd --system --gid 10001 gerion \
 && useradd --system --uid 10001 --gid gerion --home-dir /app --shell /usr/sbin/nologin gerion

# Dependencies first (the distribution carries no code), so code changes reuse this layer.
COPY pyproject.toml ./
RUN pip install .

COPY . .
# collectstatic needs settings, not secrets: a throwaway key for this step only.
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v0 \
 && rm -rf var && mkdir -p var /keys /tls && chown gerion:gerion var /keys /tls

USER gerion
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]

# Refuse to start on a misconfiguration (missing key, weak key, insecure settings): warnings
# included, as the README's production checklist says. Clients reach gunicorn only through
# a buffering reverse proxy (compose.yaml: deploy/nginx/).
CMD ["sh", "-c", "python manage.py check --deploy --fail-level WARNING && exec gunicorn gerion.wsgi"]
