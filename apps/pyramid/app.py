"""A small JSON API with Pyramid, served by wasmwsgi at /pyramid/.

Fill site-packages/ first with `make vendor-apps` (Pyramid, WebOb, zope.interface and the
rest of Pyramid's dependencies, from Debian; zope.interface runs its pure-Python code).

Routes:
    GET  /              a page that links to the routes below
    GET  /notes         the notes, as JSON
    GET  /notes/{id}    one note, or a JSON 404
    POST /notes         create a note from a JSON body {"text": "...", "tags": ["..."]}:
                        201 with the note and a Location header; 400 for a body that is
                        not JSON, 415 for another content type, 422 for invalid fields

Every request runs in a fresh interpreter, so a created note is not kept: a real app
would store it outside the sandbox. The list below is the app's fixed seed data.
"""
from html import escape

from pyramid.config import Configurator
from pyramid.httpexceptions import (
    HTTPBadRequest,
    HTTPNotFound,
    HTTPUnprocessableEntity,
    HTTPUnsupportedMediaType,
)
from pyramid.response import Response
from pyramid.view import view_config

NOTES = [
    {"id": 1, "text": "Every request gets its own interpreter.", "tags": ["wasmwsgi"]},
    {"id": 2, "text": "Pyramid's views are found by config.scan().", "tags": ["pyramid"]},
]
MAX_TEXT = 500

INDEX = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Notes API · Pyramid on wasmwsgi</title></head>
<body>
<h1>Pyramid on wasmwsgi</h1>
<p>A small JSON API of notes:</p>
<ul>
  <li><a href="{notes}">GET {notes}</a> lists the notes</li>
  <li><a href="{note}">GET {note}</a> returns one note</li>
  <li><code>POST {notes}</code> with a JSON body <code>{{"text": "...", "tags": ["..."]}}</code> creates a note</li>
</ul>
</body>
</html>
"""


def json_error(exc_class, message):
    return exc_class(json_body={"status": exc_class.code, "error": message})


@view_config(route_name="home", request_method="GET")
def home(request):
    # route_path builds each link from the route's name, below the app's SCRIPT_NAME.
    notes, note = request.route_path("notes"), request.route_path("note", id=1)
    return Response(INDEX.format(notes=escape(notes), note=escape(note)))


@view_config(route_name="notes", request_method="GET", renderer="json")
def list_notes(request):
    return {"notes": NOTES, "count": len(NOTES)}


@view_config(route_name="note", request_method="GET", renderer="json")
def get_note(request):
    note_id = int(request.matchdict["id"])
    for note in NOTES:
        if note["id"] == note_id:
            return note
    raise json_error(HTTPNotFound, "no note with id %d" % note_id)


@view_config(route_name="notes", request_method="POST", renderer="json")
def create_note(request):
    if request.content_type != "application/json":
        raise json_error(HTTPUnsupportedMediaType, "send the note as application/json")
    try:
        data = request.json_body
    except ValueError:
        raise json_error(HTTPBadRequest, "the request body is not valid JSON")
    problems = validate(data)
    if problems:
        raise json_error(HTTPUnprocessableEntity, "; ".join(problems))
    note = {"id": len(NOTES) + 1, "text": data["text"].strip(), "tags": data.get("tags", [])}
    request.response.status_code = 201
    request.response.location = request.route_path("note", id=note["id"])
    return note


def validate(data):
    if not isinstance(data, dict):
        return ["the body must be a JSON object"]
    problems = []
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        problems.append("text: a non-empty string is required")
    elif len(text) > MAX_TEXT:
        problems.append("text: at most %d characters" % MAX_TEXT)
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append("tags: a list of strings")
    return problems


def make_app():
    with Configurator() as config:
        config.add_route("home", "/")
        config.add_route("notes", "/notes")
        config.add_route("note", r"/notes/{id:\d+}")
        config.scan(__name__)
    return config.make_wsgi_app()


application = make_app()
