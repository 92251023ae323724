"""Settings of the Django example served by wasmwsgi at /django/.

The app folder is read-only inside the sandbox. The notes live in SQLite in /data, the
data folder the server's operator grants, unless the operator grants a DATABASE_URL
naming a MariaDB or MySQL server (and an outbound grant to reach it).
"""
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

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
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    },
]

# The operator may grant DATABASE_URL in server.toml ([apps.django.env]), with an
# outbound grant to the server it names. Unset, the notes are in SQLite in the data
# folder (DJANGO_DATABASE moves the file, for makemigrations on the host).
DATABASE_URL = os.environ.get("DATABASE_URL", "")
DATABASE_URL_FORMS = (
    "mysql://USER:PASSWORD@HOST[:PORT]/NAME or mariadb://USER:PASSWORD@HOST[:PORT]/NAME "
    "(port 3306 by default; percent-encode @ : / % in USER and PASSWORD)"
)


def mysql_database(url):
    """Django's settings for the MariaDB or MySQL database a DATABASE_URL names."""
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb"):
        # Only the scheme is quoted: the rest may hold a password.
        raise ImproperlyConfigured(
            f"DATABASE_URL has the scheme {parts.scheme!r}, and this app knows only mysql:// and "
            f"mariadb://: write it as {DATABASE_URL_FORMS}, or leave DATABASE_URL unset for "
            "SQLite in /data/db.sqlite3"
        )
    try:
        port = parts.port or 3306
    except ValueError:
        raise ImproperlyConfigured(
            f"DATABASE_URL has a port that is not a number: write it as {DATABASE_URL_FORMS}"
        ) from None
    if not parts.hostname or not parts.path.strip("/"):
        raise ImproperlyConfigured(
            f"DATABASE_URL lacks the host or the database name: write it as {DATABASE_URL_FORMS}"
        )
    if parts.query or parts.fragment:
        raise ImproperlyConfigured(
            f"DATABASE_URL takes no ?options or #fragment: write it as {DATABASE_URL_FORMS}"
        )
    # Django's mysql backend imports MySQLdb (mysqlclient, a C extension the sandbox
    # cannot load); PyMySQL, pure Python, answers to that name.
    import pymysql

    pymysql.install_as_MySQLdb()
    return {
        "ENGINE": "django.db.backends.mysql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname,
        "PORT": port,
        # Four bytes per character, so all of Unicode (MariaDB's "utf8" stops at three).
        "OPTIONS": {"charset": "utf8mb4"},
    }


if DATABASE_URL:
    DATABASES = {"default": mysql_database(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DJANGO_DATABASE", "/data/db.sqlite3"),
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_I18N = False
USE_L10N = False
# Datetimes are stored in UTC and shown in Paris time: Debian's pytz reads the guest's
# /usr/share/zoneinfo as it reads the host's under gunicorn.
USE_TZ = True
TIME_ZONE = "Europe/Paris"
LANGUAGE_CODE = "en-us"

# A relative STATIC_URL gets the app's SCRIPT_NAME in front (/django/static/...).
# `manage.py collectstatic` (run by apps/vendor.sh) gathers each app's static/ folder
# into STATIC_ROOT, with content-hashed names (style.0123456789ab.css) that
# {% static %} reads from the manifest there; the server answers /static/ from that
# folder itself ([static] in wasmwsgi.toml), without running Django.
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_STORAGE = "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"

# Everything Django logs goes to stderr, which wasmwsgi puts in the server log.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
