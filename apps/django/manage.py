#!/usr/bin/env python3
"""Django's command-line utility, for development on the host (makemigrations, check).

The served app migrates its own database when it loads (see wsgi.py); this script is
not used by wasmwsgi. Run it with the vendored Django:

    cd apps/django && DJANGO_DATABASE=/tmp/notes.sqlite3 python3 manage.py makemigrations notes
"""
import os
import sys

if __name__ == "__main__":
    sys.dont_write_bytecode = True  # keep __pycache__ out of the app folder
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "site-packages"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
