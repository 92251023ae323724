from django.contrib.staticfiles.storage import staticfiles_storage
from django.utils.functional import empty
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, which serves the static files (there is no web server in front), made
    to forget the STATIC_URL it reads when Django builds the middleware.

    Django puts the request's SCRIPT_NAME in front of a relative STATIC_URL the first
    time the setting is read, and keeps the result. WhiteNoise reads it outside any
    request (prefix "/"), so every page would link /static/... wherever the app is
    mounted. Forgetting that value, and any storage built from it, makes each request
    read it again under its own SCRIPT_NAME: /django/static/... when mounted at /django.
    WhiteNoise matches the path below SCRIPT_NAME, so it is unaffected.
    """

    def configure_from_settings(self, settings):
        super().configure_from_settings(settings)
        settings.__dict__.pop("STATIC_URL", None)
        staticfiles_storage._wrapped = empty
