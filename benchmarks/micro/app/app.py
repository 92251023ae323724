"""WSGI front of the micro-suite: GET /?repeat=N&only=a,b runs suite.run() inside the
sandbox and answers its results as JSON (400 with the reason for bad parameters).

run.sh stages this folder with suite.py and the Jinja2 and MarkupSafe sources.
"""

import json
from urllib.parse import parse_qs

import suite

# Imported while the app loads, so the snapshot already holds it and the timed runs
# measure rendering, not the import.
import jinja2  # noqa: F401


def application(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    try:
        repeat = int(query.get("repeat", ["5"])[0])
        only = [n for n in query.get("only", [""])[0].split(",") if n]
        body = json.dumps(suite.run(repeat, only)).encode()
        status = "200 OK"
    except ValueError as e:
        body = json.dumps({"error": "bad parameter: %s (use ?repeat=N&only=name,...)" % e}).encode()
        status = "400 Bad Request"
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
