"""WSGI entry point: `gunicorn gerion.wsgi` (settings in gunicorn.conf.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gerion.settings")

application = get_wsgi_application()
