"""A tenant that attacks the sandbox. Each route is one attack; PATH_INFO picks it.

Routes that probe a boundary answer 200 with what they observed, so the test can check
that the boundary held; routes that break the rules expect the server's error status.
"""
import json
import os
import sys


def ok(start_response, obj):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(obj).encode()]


def attempt(fn):
    try:
        return "allowed: %r" % (fn(),)
    except BaseException as e:  # noqa: BLE001 - the point is to see what happens
        return "blocked: %s" % type(e).__name__


def spin(environ, start_response):
    while True:
        pass


def regex(environ, start_response):
    import re

    re.match(r"(a+)+$", "a" * 40 + "b")  # exponential backtracking inside _sre (C)
    return ok(start_response, "finished")


def sleep(environ, start_response):
    import time

    time.sleep(60)
    return ok(start_response, "woke")


def memory_bomb(environ, start_response):
    blob = bytearray(1 << 30)
    return ok(start_response, len(blob))


def memory_creep(environ, start_response):
    hoard = []
    while True:
        hoard.append("x" * (1 << 20))


def string_bomb(environ, start_response):
    return ok(start_response, len("x" * (1 << 29)))


def recursion(environ, start_response):
    def f(n):
        return f(n + 1)

    return ok(start_response, f(0))


def deep_recursion(environ, start_response):
    sys.setrecursionlimit(10 ** 6)

    def f(n):
        return f(n + 1) + 1

    return ok(start_response, f(0))


def c_stack_overflow(environ, start_response):
    # repr recurses in C, one level a nested list: far past the 512 KiB C stack at the
    # bottom of linear memory, whose overflow wraps below address 0, an access out of
    # bounds (with guard pages, a fault past the memory's end).
    sys.setrecursionlimit(10 ** 6)
    x = []
    for _ in range(300000):
        x = [x]
    return ok(start_response, len(repr(x)))


def nested_json(environ, start_response):
    return ok(start_response, json.loads("[" * 100000 + "]" * 100000))


def huge_stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    chunk = b"x" * (64 << 10)
    while True:
        yield chunk


def huge_chunk(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [b"x" * (2 << 20), b"tail"]


def fd_exhaustion(environ, start_response):
    held = []
    try:
        for _ in range(10000):
            held.append(open("/app/app.py", "rb"))
    except OSError:
        pass
    return ok(start_response, len(held))


def host_files(environ, start_response):
    paths = ["/etc/passwd", "/app/../../etc/passwd", "../../../../etc/passwd", "/proc/self/environ",
             "/root/.bashrc", "/usr/local/lib/python3.11/../../../../etc/hostname"]
    return ok(start_response, {p: attempt(lambda p=p: open(p).read(64)) for p in paths})


def list_root(environ, start_response):
    return ok(start_response, {p: attempt(lambda p=p: sorted(os.listdir(p))) for p in ["/", "/etc", "/app/.."]})


def environment(environ, start_response):
    return ok(start_response, dict(os.environ))


def write_files(environ, start_response):
    def write(path):
        with open(path, "w") as f:
            f.write("x")
        return path

    paths = ["/app/planted.py", "/usr/local/lib/python3.11/os.py", "/x", "/app/../escape", "/tmp/../x",
             "/tmp/../../etc/cron.d/x"]
    return ok(start_response, {p: attempt(lambda p=p: write(p)) for p in paths})


def scratch(environ, start_response):
    """The private /tmp: writable, empty at the start of every request, bounded; its
    links never reach the host's files."""
    import tempfile

    seen = {"initial": sorted(os.listdir("/tmp"))}
    with open("/tmp/note.txt", "w") as f:
        f.write("kept for this request only")
    os.mkdir("/tmp/sub")
    os.rename("/tmp/note.txt", "/tmp/sub/note.txt")
    with open("/tmp/sub/note.txt") as f:
        seen["read_back"] = f.read()
    with tempfile.NamedTemporaryFile(dir="/tmp") as t:
        t.write(b"x" * 1000)
        t.flush()
        seen["tempfile_size"] = os.path.getsize(t.name)
    seen["listing"] = sorted(os.listdir("/tmp"))
    # Links in /tmp exist, and lead only into the sandbox's own tree.
    seen["link"] = attempt(lambda: os.symlink("/etc/passwd", "/tmp/passwd"))
    seen["read_through_link"] = attempt(lambda: open("/tmp/passwd").read())
    seen["climb_through_link"] = attempt(
        lambda: os.symlink("../../../../etc/shadow", "/tmp/sub/shadow") or open("/tmp/sub/shadow").read())

    def fill():
        with open("/tmp/big", "wb") as f:
            for _ in range(64):
                f.write(b"x" * (1 << 20))

    seen["fill_past_limit"] = attempt(fill)
    return ok(start_response, seen)


def sys_exit(environ, start_response):
    sys.exit(3)


def os_exit(environ, start_response):
    os._exit(3)


class BadClose:
    def __iter__(self):
        yield b"part one "
        yield b"part two"

    def close(self):
        raise RuntimeError("close failed")


def close_raises(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return BadClose()


def threads(environ, start_response):
    import threading

    t = threading.Thread(target=lambda: None)
    t.start()
    return ok(start_response, "thread started")


def sockets(environ, start_response):
    import socket

    def connect():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(("127.0.0.1", 22))
        return "connected"

    return ok(start_response, {"connect": attempt(connect), "getaddrinfo": attempt(lambda: socket.getaddrinfo("localhost", 80))})


def subprocesses(environ, start_response):
    def run():
        import subprocess

        return subprocess.run(["id"], capture_output=True).stdout

    def python_child():
        import subprocess

        # A python child is an instance of the sandbox, and only when the operator grants it.
        return subprocess.run([sys.executable, "-c", "pass"]).returncode

    return ok(start_response, {"subprocess": attempt(run), "system": attempt(lambda: os.system("id")),
                               "fork": attempt(lambda: os.fork()), "python": attempt(python_child)})


def header_injection(environ, start_response):
    start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: session=stolen")])
    return [b"x"]


def status_injection(environ, start_response):
    start_response("200 OK\r\nSet-Cookie: session=stolen", [])
    return [b"x"]


def hop_by_hop(environ, start_response):
    start_response("200 OK", [("Transfer-Encoding", "chunked")])
    return [b"x"]


def non_latin1(environ, start_response):
    start_response("200 OK", [("X-Name", "\u2603")])
    return [b"x"]


def raw_calls(environ, start_response):
    """Garbage pointers and lengths straight into every host function, from C."""
    import _wasmwsgi

    top = 0xFFFFFFFF
    calls = {
        "app_info_oob": (0, top - 8, 64),
        "app_info_neg_len": (0, 0, 0x80000000),
        "environ_oob": (1, top, 1 << 20),
        "input_read_oob": (2, top - 1, 2),
        "input_read_huge": (2, 0, 0x7FFFFFFF),
        "start_response_oob": (3, top, 6, 0, 0),
        "start_response_neg": (3, 0, 0xFFFFFFFF, 0, 0),
        "body_write_before_headers": (4, 0, 10),
        "body_write_oob": (4, top - 4, 100),
        "log_write_oob": (5, 3, top, 100),
        "log_write_neg": (5, 3, 0, 0x90000000),
    }
    results = {name: _wasmwsgi.raw_call(*args) for name, args in calls.items()}
    return ok(start_response, results)


def test_capi_fatal(environ, start_response):
    """CPython's test-only C API module is built in: it aborts the interpreter on request."""
    try:
        import _testcapi
    except ImportError as e:
        return ok(start_response, "not built: %s" % e)
    _testcapi.fatal_error(b"aborted on purpose")


def _port(environ):
    from urllib.parse import parse_qs

    return int(parse_qs(environ.get("QUERY_STRING", ""))["port"][0])


def conn_flood(environ, start_response):
    # As many connections at once as the host gives, then as many more one after
    # another: both end at a limit (outbound.max_open, outbound.max_conns).
    import socket

    port, held, seen = _port(environ), [], {}
    try:
        while True:
            held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
    except OSError as e:
        seen["at_once"], seen["at_once_error"] = len(held), str(e)
    for s in held:
        s.close()
    made = 0
    try:
        while True:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            made += 1
    except OSError as e:
        seen["in_all"], seen["in_all_error"] = len(held) + made, str(e)
    return ok(start_response, seen)


def slowloris(environ, start_response):
    # Holds every connection it can get, sending a byte at a time, never reading, until
    # the time limit stops it.
    import socket
    import time

    held = []
    try:
        while True:
            held.append(socket.create_connection(("127.0.0.1", _port(environ)), timeout=2))
    except OSError:
        pass
    while True:
        for s in held:
            s.send(b"x")
        time.sleep(0.05)


def endless_read(environ, start_response):
    # Keeps everything a server that never stops sending sends.
    import socket

    s = socket.create_connection(("127.0.0.1", _port(environ)), timeout=2)
    kept, total = [], 0
    try:
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                return ok(start_response, {"read": total, "error": "end of stream"})
            kept.append(chunk)
            total += len(chunk)
    except OSError as e:
        return ok(start_response, {"read": total, "error": str(e)})


def endless_write(environ, start_response):
    # Sends without end to a server that reads everything.
    import socket

    s = socket.create_connection(("127.0.0.1", _port(environ)), timeout=2)
    chunk, total = b"x" * (1 << 16), 0
    try:
        while True:
            s.sendall(chunk)
            total += len(chunk)
    except OSError as e:
        return ok(start_response, {"sent": total, "error": str(e)})


def read_body(environ, start_response):
    data = environ["wsgi.input"].read()
    return ok(start_response, len(data))


routes = {name.replace("_", "-"): fn for name, fn in list(globals().items()) if callable(fn) and not name.startswith("_")}


def application(environ, start_response):
    return routes[environ["PATH_INFO"].strip("/")](environ, start_response)
