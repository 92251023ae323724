"""Echo app for TestGunicornCorpus: answers with what it saw of the request, as JSON.

Every call first writes a "corpus-call" marker to wsgi.errors, so that the harness can
prove from the server log that a request the corpus calls invalid never reached an app.
"""
import json

CGI_KEYS = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "SERVER_PROTOCOL",
    "RAW_URI",
    "REQUEST_URI",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
)


def application(environ, start_response):
    errors = environ["wsgi.errors"]
    errors.write("corpus-call %s %r\n" % (environ["REQUEST_METHOD"], environ.get("RAW_URI")))
    errors.flush()
    seen = {k: environ[k] for k in CGI_KEYS if k in environ}
    seen.update((k, v) for k, v in environ.items() if k.startswith("HTTP_"))
    seen["wsgi.input_terminated"] = bool(environ.get("wsgi.input_terminated"))
    try:
        body = environ["wsgi.input"].read()
    except Exception as e:
        # A body the server finds malformed only while streaming it: say so in the log and
        # fail like an ordinary app would.
        errors.write("corpus-input-error %s: %s\n" % (type(e).__name__, e))
        raise
    seen["body"] = body.decode("latin-1")
    data = json.dumps(seen, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]
