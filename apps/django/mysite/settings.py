"""Settings of the Django example served by wasmwsgi at /django/.

The app folder is read-only inside the sandbox; the only writable place that lasts is
/data, the app's data_dir (wasmwsgi.toml), where the SQLite database lives.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# An example key: a real deployment sets DJANGO_SECRET_KEY in [env] of wasmwsgi.toml.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "wasmwsgi-django-example-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "notes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files come from the app itself: there is no separate web server in front.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DATABASE", "/data/db.sqlite3"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_I18N = False
USE_L10N = False
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"

# A relative STATIC_URL gets the app's SCRIPT_NAME in front (/django/static/...).
# WhiteNoise finds the files through the staticfiles finders (each app's static/
# folder) when the app loads, so there is no collectstatic step and no STATIC_ROOT.
STATIC_URL = "static/"
WHITENOISE_USE_FINDERS = True

# Everything Django logs goes to stderr, which wasmwsgi puts in the server log.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
