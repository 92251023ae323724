#!/usr/bin/env python3
"""Django's command-line utility. wasmwsgi runs it in the app's sandbox, with the data
folder the server's operator grants, from the top of the repository:

    bin/wasmwsgi run django --config server.toml -- manage.py migrate

(`make serve` runs that before serving). On the host, with the vendored Django, it
makes the migrations, which need a writable app folder:

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
