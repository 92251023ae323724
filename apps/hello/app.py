"""A plain WSGI app: no framework, just the callable PEP 3333 describes.

Copy this folder to start an app of your own. wasmwsgi serves it at /hello/.
"""
import json
import sys

# Module state lives only as long as one request: every request starts from the app's
# snapshot (isolation = "request", the default).
counter = 0

ROUTES = """\
{root}/?name=you  greets you
{root}/info       the interpreter and the request, as JSON
{root}/counter    a module-level counter: 1 on every request
{root}/echo       POST a body and get it back
"""


def application(environ, start_response):
    global counter
    counter += 1
    path = environ.get("PATH_INFO", "")

    if path == "/counter":
        body = str(counter).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    if path == "/info":
        body = json.dumps({
            "platform": sys.platform,
            "python": sys.version.split()[0],
            "script_name": environ["SCRIPT_NAME"],
            "path_info": path,
            "method": environ["REQUEST_METHOD"],
        }).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    if path == "/echo" and environ["REQUEST_METHOD"] == "POST":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", environ.get("CONTENT_TYPE", "application/octet-stream"))])
        return [body]

    name = environ.get("QUERY_STRING", "").partition("name=")[2] or "world"
    body = "Hello, %s! (CPython %s on %s)\n\n" % (name, sys.version.split()[0], sys.platform)
    # The links start with SCRIPT_NAME, the path the server mounted the app at.
    root = environ["SCRIPT_NAME"]
    body += ROUTES.replace("{root}", root)
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body.encode()]
