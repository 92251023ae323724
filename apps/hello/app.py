"""A plain WSGI app: no framework, just the callable PEP 3333 describes.

Copy this folder to start an app of your own. wasmwsgi serves it at /hello/.
"""
import json
import sys

# Module state lives only as long as one request: every request starts from the app's
# snapshot (isolation = "request", the default).
counter = 0


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
    body = ("Hello, %s! (CPython %s on %s)\n" % (name, sys.version.split()[0], sys.platform)).encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body]
