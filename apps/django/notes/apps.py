from django.apps import AppConfig


class NotesConfig(AppConfig):
    name = "notes"

    def ready(self):
        # Resolve the URLs and compile the templates once, when the project loads: under
        # wasmwsgi that is before the app's snapshot, which every request starts from.
        from django.template.loader import get_template
        from django.urls import get_resolver, reverse

        get_resolver().url_patterns
        reverse("notes:index")
        for name in ("notes/index.html", "notes/detail.html", "404.html", "500.html"):
            get_template(name)
