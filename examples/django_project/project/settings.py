"""Settings of the Django example: the smallest project that uses relier_django.

Relier's settings are the one ``RELIER`` dict; here they come from the
environment (``RELIER_REDIS_URL``, ``RELIER_ADMIN_TOKEN``), the variables the
worker reads too, so the site and the worker share one Redis.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "relier_django",
]
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # AdmissionRejectedError from a view becomes 429 + Retry-After.
    "relier_django.middleware.AdmissionMiddleware",
]
ROOT_URLCONF = "project.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB", str(BASE_DIR / "db.sqlite3")),
    }
}
USE_TZ = True

RELIER = {
    "redis_url": os.environ.get("RELIER_REDIS_URL", "redis://127.0.0.1:6379/0"),
    # The admin API's bearer token; staff users may use it with their session too.
    "admin_token": os.environ.get("RELIER_ADMIN_TOKEN"),
}
