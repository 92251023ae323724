"""A small JSON API with Falcon, served by wasmwsgi at /falcon/.

Fill site-packages/ first with `make vendor-apps` (Falcon, from Debian; its Cython
extensions are left out and Falcon runs its pure-Python modules).

Routes:
    GET  /              a page that links to the routes below
    GET  /notes         the notes, as JSON
    GET  /notes/{id}    one note, or Falcon's JSON 404
    POST /notes         create a note from a JSON body {"text": "...", "tags": ["..."]}:
                        201 with the note and a Location header; Falcon answers 400 for a
                        body that is not JSON, 415 for another content type, and the app
                        422 for invalid fields

Every request runs in a fresh interpreter, so a created note is not kept: a real app
would store it outside the sandbox. The list below is the app's fixed seed data.
"""
import html

import falcon

NOTES = [
    {"id": 1, "text": "Every request gets its own interpreter.", "tags": ["wasmwsgi"]},
    {"id": 2, "text": "Falcon runs here without its Cython speedups.", "tags": ["falcon"]},
]
MAX_TEXT = 500

INDEX = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Notes API · Falcon on wasmwsgi</title></head>
<body>
<h1>Falcon on wasmwsgi</h1>
<p>A small JSON API of notes:</p>
<ul>
  <li><a href="{notes}">GET {notes}</a> lists the notes</li>
  <li><a href="{note}">GET {note}</a> returns one note</li>
  <li><code>POST {notes}</code> with a JSON body <code>{{"text": "...", "tags": ["..."]}}</code> creates a note</li>
</ul>
</body>
</html>
"""


def find_note(note_id):
    for note in NOTES:
        if note["id"] == note_id:
            return note
    raise falcon.HTTPNotFound(description="no note with id %d" % note_id)


class IndexResource:
    def on_get(self, req, resp):
        # req.root_path is the app's mount (SCRIPT_NAME), so the links work below it.
        root = html.escape(req.root_path)
        resp.content_type = falcon.MEDIA_HTML
        resp.text = INDEX.format(notes=root + "/notes", note=root + "/notes/1")


class NotesResource:
    def on_get(self, req, resp):
        resp.media = {"notes": NOTES, "count": len(NOTES)}

    def on_post(self, req, resp):
        if req.content_type is None or req.content_type.split(";")[0].strip() != falcon.MEDIA_JSON:
            raise falcon.HTTPUnsupportedMediaType(description="send the note as application/json")
        data = req.get_media()  # a body that is not JSON: Falcon raises its own 400
        problems = validate(data)
        if problems:
            raise falcon.HTTPUnprocessableEntity(title="Invalid note", description="; ".join(problems))
        note = {"id": len(NOTES) + 1, "text": data["text"].strip(), "tags": data.get("tags", [])}
        resp.status = falcon.HTTP_201
        resp.location = "%s/notes/%d" % (req.root_path, note["id"])
        resp.media = note


class NoteResource:
    def on_get(self, req, resp, note_id):
        resp.media = find_note(note_id)


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


application = falcon.App()
application.add_route("/", IndexResource())
application.add_route("/notes", NotesResource())
application.add_route("/notes/{note_id:int}", NoteResource())
