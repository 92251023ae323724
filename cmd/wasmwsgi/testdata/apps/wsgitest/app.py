"""One app per PEP 3333 behaviour the integration tests check, routed by PATH_INFO."""
import json
import os
import sys

counter = 0


def echo(environ, start_response):
    body = environ["wsgi.input"].read()
    seen = {k: v for k, v in environ.items() if isinstance(v, str)}
    seen["body"] = body.decode("latin-1")
    seen["wsgi.input_terminated"] = environ.get("wsgi.input_terminated")
    seen["wsgi.version"] = list(environ["wsgi.version"])
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        seen[key] = environ[key]
    seen["environ_is_dict"] = type(environ) is dict
    data = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]


def lines(environ, start_response):
    stream = environ["wsgi.input"]
    first = stream.readline()
    limited = stream.readline(3)
    rest = list(stream)
    data = json.dumps([first.decode(), limited.decode(), [l.decode() for l in rest], stream.read().decode()]).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]


def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"one\n"
    yield b""
    yield b"two\n"
    yield b"three\n"


def write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"0123456789")
    return []


class Closing:
    """An iterable whose close() logs a token; `mode` picks how iteration goes."""

    def __init__(self, environ, token, mode=""):
        self.errors = environ["wsgi.errors"]
        self.token = token
        self.mode = mode

    def __iter__(self):
        if self.mode == "slow":
            import time

            for i in range(100):
                yield b"tick %d\n" % i
                time.sleep(0.05)
        yield b"closing body"
        if self.mode == "raise":
            raise RuntimeError("failed mid-iteration")
        if self.mode == "cl":
            yield b" and bytes past the Content-Length"

    def close(self):
        self.errors.writelines(["close-called ", "token=%s\n" % self.token])
        self.errors.flush()


def closing(environ, start_response):
    token, _, mode = environ["QUERY_STRING"].partition("&")
    headers = [("Content-Type", "text/plain")]
    if mode == "cl":
        headers.append(("Content-Length", str(len(b"closing body"))))
    start_response("200 OK", headers)
    return Closing(environ, token, mode)


def exc_info_replace(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
    yield b""
    try:
        raise ValueError("late failure")
    except ValueError:
        start_response("500 Replaced Oops", [("Content-Type", "text/plain")], sys.exc_info())
    yield b"replaced"


def raise_early(environ, start_response):
    print("app output that must not reach the client", flush=True)
    raise RuntimeError("secret-traceback-text")


def raise_late(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"partial"
    raise RuntimeError("failed mid-stream")


def yield_str(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["not bytes"]


def not_iterable(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return 42


def header_injection(environ, start_response):
    start_response("200 OK", [("X-Bad", "a\r\nSet-Cookie: stolen=1")])
    return [b"injected"]


def status_injection(environ, start_response):
    start_response("200 OK\r\nX-Bad: 1", [])
    return [b"injected"]


def no_start_response(environ, start_response):
    return [b"never started"]


def count(environ, start_response):
    global counter
    counter += 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(counter).encode()]


def entropy(environ, start_response):
    import os
    import random
    import time

    data = json.dumps({"urandom": os.urandom(16).hex(), "random": random.random(), "time": time.time()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]


def sleep(environ, start_response):
    import time

    time.sleep(float(environ["QUERY_STRING"] or "60"))
    start_response("200 OK", [])
    return [b"woke up"]


def spin(environ, start_response):
    while True:
        pass


def exit_process(environ, start_response):
    os._exit(3)  # proc_exit: the guest stops without unwinding, as a trap does


stash = []


def leak(environ, start_response):
    """Reports what earlier requests left behind, then leaves something of its own in
    module state, os.environ, a builtin module and a large buffer."""
    import builtins

    token = environ["QUERY_STRING"]
    seen = {
        "stash": list(stash),
        "environ": os.environ.get("WASMWSGI_TEST_TOKEN"),
        "builtins": getattr(builtins, "_leaked_token", None),
        "buffer": bytes(_buffer[:16]).rstrip(b"\0").decode(),
    }
    stash.append(token)
    os.environ["WASMWSGI_TEST_TOKEN"] = token
    builtins._leaked_token = token
    _buffer[:len(token)] = token.encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


_buffer = bytearray(1 << 20)


def twice(environ, start_response):
    start_response("200 OK", [])
    start_response("201 Created", [])
    return [b"second start_response was accepted"]


def exc_info_after_headers(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"headers and some body went out"
    try:
        raise ValueError("too late")
    except ValueError:
        start_response("500 Oops", [], sys.exc_info())  # must re-raise
    yield b"unreachable"


def content_length(environ, start_response):
    declared, _, actual = environ["QUERY_STRING"].partition("&")
    start_response("200 OK", [("Content-Length", declared)])
    body = b"abcdefghijklmnop"[:int(actual)]
    return [body[:4], body[4:]]


def status(environ, start_response):
    start_response(environ["QUERY_STRING"].replace("+", " "), [("Content-Type", "text/plain")])
    return [b"a body the status does not allow"]


def slow_stream(environ, start_response):
    import time

    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first"
    time.sleep(0.5)
    yield b"second"


def file_wrapper(environ, start_response):
    f = open("/app/data.txt", "rb")
    start_response("200 OK", [("Content-Type", "text/plain")])
    wrapper = environ["wsgi.file_wrapper"](f, 4)
    orig_close = wrapper.close

    def close():
        orig_close()
        print("file-wrapper-closed=%s" % f.closed, file=environ["wsgi.errors"])

    wrapper.close = close
    return wrapper


def read_modes(environ, start_response):
    stream = environ["wsgi.input"]
    mode = environ["QUERY_STRING"]
    if mode == "n":
        parts = [stream.read(3), stream.read(100), stream.read(5), stream.read()]
    elif mode == "none":
        parts = [stream.read(None), stream.read(None)]
    elif mode == "minus":
        parts = [stream.read(-1), stream.read(0)]
    else:
        parts = [l for l in stream.readlines(int(mode or "-1"))]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps([p.decode() for p in parts]).encode()]


def ignore_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"did not read the body"]


routes = {
    "/twice": twice,
    "/excinfo-late": exc_info_after_headers,
    "/content-length": content_length,
    "/status": status,
    "/slow-stream": slow_stream,
    "/file-wrapper": file_wrapper,
    "/read-modes": read_modes,
    "/ignore-body": ignore_body,
    "/leak": leak,
    "/sleep": sleep,
    "/spin": spin,
    "/exit": exit_process,
    "/entropy": entropy,
    "/echo": echo,
    "/lines": lines,
    "/stream": stream,
    "/write": write_callable,
    "/close": closing,
    "/excinfo": exc_info_replace,
    "/raise": raise_early,
    "/raise-late": raise_late,
    "/str": yield_str,
    "/not-iterable": not_iterable,
    "/header-injection": header_injection,
    "/status-injection": status_injection,
    "/no-start-response": no_start_response,
    "/counter": count,
}


def application(environ, start_response):
    handler = routes.get(environ["PATH_INFO"], echo)
    return handler(environ, start_response)
