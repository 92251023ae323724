from django.apps import AppConfig


class NotesConfig(AppConfig):
    name = "notes"

    def ready(self):
        # Resolve the URLs, compile the templates and read TIME_ZONE's rules once, when
        # the project loads: under wasmwsgi that is before the app's snapshot, which every
        # request starts from.
        from django.template.loader import get_template
        from django.urls import get_resolver, reverse
        from django.utils.timezone import get_default_timezone

        get_resolver().url_patterns
        reverse("notes:index")
        for name in ("notes/index.html", "notes/detail.html", "notes/time.html", "404.html", "500.html"):
            get_template(name)
        get_default_timezone()
