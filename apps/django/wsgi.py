"""The WSGI entrypoint of the Django example, imported once when wasmwsgi loads the app.

Everything done at import time ends up in the app's snapshot, which every request
starts from; so this module also does, once per load, what would otherwise cost every
request its time:

* It resolves the URLs and compiles the templates, so that requests find them ready.
* It leaves STATIC_URL to be computed by each request (see _forget_static_url).

The database schema is not its business: `wasmwsgi run django -- manage.py migrate`
brings it up to date before the server starts (`make serve` does).

DJANGO_SETTINGS_MODULE comes from [env] in wasmwsgi.toml.
"""
from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()  # django.setup(), then the middleware (WhiteNoise scans static/)


def _warm():
    from django.template.loader import get_template
    from django.urls import get_resolver, reverse

    get_resolver().url_patterns
    reverse("notes:index")
    for name in ("notes/index.html", "notes/detail.html", "404.html", "500.html"):
        get_template(name)


def _forget_static_url():
    # Django puts the request's SCRIPT_NAME in front of a relative STATIC_URL the first
    # time the setting is read, and keeps the result. WhiteNoise read it while the
    # middleware was built above, outside any request (prefix "/"). Forget that value,
    # and any storage built from it, so that each request, restored from the snapshot,
    # reads it again under its own SCRIPT_NAME: /django/static/... when mounted at
    # /django. (WhiteNoise matches the path below SCRIPT_NAME, so it is unaffected.)
    from django.conf import settings
    from django.contrib.staticfiles.storage import staticfiles_storage
    from django.utils.functional import empty

    settings.__dict__.pop("STATIC_URL", None)
    staticfiles_storage._wrapped = empty


_warm()
_forget_static_url()
