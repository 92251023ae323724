"""A small JSON API with Bottle, served by wasmwsgi at /bottle/.

Fill site-packages/ first with `make vendor-apps` (bottle.py, from Debian).

Routes:
    GET  /              a page that links to the routes below
    GET  /notes         the notes, as JSON
    GET  /notes/<id>    one note, or a JSON 404
    POST /notes         create a note from a JSON body {"text": "...", "tags": ["..."]}:
                        201 with the note and a Location header; 400 for a body that is
                        not JSON, 415 for another content type, 422 for invalid fields

Every request runs in a fresh interpreter, so a created note is not kept: a real app
would store it outside the sandbox. The list below is the app's fixed seed data.
"""
import json

from bottle import Bottle, SimpleTemplate, abort, request, response

NOTES = [
    {"id": 1, "text": "Every request gets its own interpreter.", "tags": ["wasmwsgi"]},
    {"id": 2, "text": "Bottle is a single file.", "tags": ["bottle"]},
]
MAX_TEXT = 500

INDEX = SimpleTemplate("""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Notes API · Bottle on wasmwsgi</title></head>
<body>
<h1>Bottle on wasmwsgi</h1>
<p>A small JSON API of notes:</p>
<ul>
  <li><a href="{{notes}}">GET {{notes}}</a> lists the notes</li>
  <li><a href="{{note}}">GET {{note}}</a> returns one note</li>
  <li><code>POST {{notes}}</code> with a JSON body <code>{"text": "...", "tags": ["..."]}</code> creates a note</li>
</ul>
</body>
</html>
""")

app = Bottle()


@app.get("/", name="index")
def index():
    # get_url builds each link from the route's name, below the app's SCRIPT_NAME.
    return INDEX.render(notes=app.get_url("notes"), note=app.get_url("note", note_id=1))


@app.get("/notes", name="notes")
def list_notes():
    return {"notes": NOTES, "count": len(NOTES)}  # Bottle turns a dict into JSON


@app.get("/notes/<note_id:int>", name="note")
def get_note(note_id):
    for note in NOTES:
        if note["id"] == note_id:
            return note
    abort(404, "no note with id %d" % note_id)


@app.post("/notes")
def create_note():
    if request.content_type.split(";")[0].strip().lower() != "application/json":
        abort(415, "send the note as application/json")
    try:
        data = request.json
    except ValueError:
        abort(400, "the request body is not valid JSON")
    problems = validate(data)
    if problems:
        abort(422, "; ".join(problems))
    note = {"id": len(NOTES) + 1, "text": data["text"].strip(), "tags": data.get("tags", [])}
    response.status = 201
    response.set_header("Location", "%s/notes/%d" % (request.script_name.rstrip("/"), note["id"]))
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


def json_error(error):
    """Errors as JSON rather than Bottle's HTML page: this is an API."""
    response.content_type = "application/json"
    return json.dumps({"status": error.status_code, "error": error.body})


for code in (400, 404, 405, 415, 422, 500):
    app.error_handler[code] = json_error

application = app
