"""The guest side of wasmwsgi: a WSGI server that runs inside the sandbox.

The host (Go) calls two entry points through the builtin module _wasmwsgi:

    init()    imports the app named by the host's app_info; 0 on success, 1 on failure
    handle()  serves the request the host holds; 0 on success, 1 on failure

Everything crosses the sandbox through the host functions documented in
hostfuncs/doc.go. This module holds the PEP 3333 rules: the environ, wsgi.input,
wsgi.errors, start_response with its exc_info rules and write() callable, lazy headers
(held until the first non-empty chunk), Content-Length bounds, and close().
"""

import os
import re
import sys

import _wasmwsgi

_app = None
_info = {}

# Sent with the first body bytes, or alone when the body is empty.
LEVEL_ERROR = 3


# The host's pairs encoding (hostfuncs/doc.go) is decoded and encoded in C, bytes read as
# latin-1: _wasmwsgi.decode_pairs(bytes) -> dict, _wasmwsgi.encode_pairs(list) -> bytes.


# ---- loading the app --------------------------------------------------------------


def init():
    global _app, _info
    try:
        _info = _wasmwsgi.decode_pairs(_wasmwsgi.app_info())
        app_dir = _info["app_dir"]
        sys.path.insert(0, app_dir)
        if "site_packages" in _info:
            sys.path.insert(1, _info["site_packages"])
        _app = _load(_info["entrypoint"], app_dir)
        if _info.get("validate") == "1":
            import warnings
            from wsgiref.validate import validator

            warnings.simplefilter("always")
            _app = validator(_app)
    except BaseException:
        _print_exception()
        return 1
    finally:
        _flush_stdio()
    return 0


def _load(entrypoint, app_dir):
    target, _, attr = entrypoint.partition(":")
    if target.endswith((".wsgi", ".py")) and ("/" in target or target.endswith(".wsgi")):
        namespace = _exec_file(app_dir + "/" + target)
        where = target
    else:
        import importlib

        module = importlib.import_module(target)
        namespace = vars(module)
        where = "module " + target
    names = [attr] if attr else ["application", "app"]
    for name in names:
        obj = namespace.get(name)
        if obj is not None:
            if not callable(obj):
                raise TypeError("%s.%s is not callable (it is %s)" % (where, name, type(obj).__name__))
            return obj
    raise LookupError(
        "%s defines no %s; name the WSGI callable `application` or set "
        "entrypoint = \"module:callable\" in wasmwsgi.toml" % (where, " or ".join(names)))


def _exec_file(path):
    import types

    with open(path, "rb") as f:
        source = f.read()
    module = types.ModuleType("__wsgi__")
    module.__file__ = path
    sys.modules["__wsgi__"] = module
    exec(compile(source, path, "exec"), module.__dict__)
    return module.__dict__


# ---- wsgi.input and wsgi.errors ---------------------------------------------------


class Input:
    """wsgi.input: reads the request body from the host in chunks, as it arrives. The
    host never returns bytes past CONTENT_LENGTH; an exhausted stream returns b''."""

    CHUNK = 64 * 1024

    def __init__(self):
        self._buf = b""
        self._eof = False

    def _fill(self, want):
        """Reads from the host until the buffer holds `want` bytes or the body ends."""
        while not self._eof and len(self._buf) < want:
            data = _wasmwsgi.read(max(self.CHUNK, want - len(self._buf)))
            if not data:
                self._eof = True
            else:
                self._buf += data

    def _take(self, n):
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def read(self, size=-1):
        if size is None or size < 0:
            while not self._eof:
                self._fill(len(self._buf) + self.CHUNK)
            return self._take(len(self._buf))
        self._fill(size)
        return self._take(size)

    def readline(self, size=-1):
        limit = size if size is not None and size >= 0 else None
        start = 0
        while True:
            i = self._buf.find(b"\n", start)
            if i >= 0:
                end = i + 1
                break
            if limit is not None and len(self._buf) >= limit:
                end = limit
                break
            if self._eof:
                end = len(self._buf)
                break
            start = len(self._buf)
            self._fill(len(self._buf) + 1)
        if limit is not None:
            end = min(end, limit)
        return self._take(end)

    def readlines(self, hint=-1):
        lines, total = [], 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self):
        pass


class Errors:
    """wsgi.errors: a text stream to the server log, one record per line, tagged by the
    host with the app and the request id."""

    def __init__(self):
        self._buf = ""

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("wsgi.errors.write() takes str, not %s" % type(s).__name__)
        self._buf += s
        if "\n" in self._buf:
            lines, _, self._buf = self._buf.rpartition("\n")
            _wasmwsgi.log(LEVEL_ERROR, lines.encode("utf-8", "backslashreplace"))
        return len(s)

    def writelines(self, seq):
        for s in seq:
            self.write(s)

    def flush(self):
        if self._buf:
            _wasmwsgi.log(LEVEL_ERROR, self._buf.encode("utf-8", "backslashreplace"))
            self._buf = ""

    def close(self):
        self.flush()


class FileWrapper:
    """wsgi.file_wrapper: iterates a file-like object in blocks and closes it."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


# ---- one request ------------------------------------------------------------------


class _Response:
    """The state of one response: headers held until the first body bytes."""

    def __init__(self, single_chunk):
        self.status = None
        self.headers = None
        self.sent = False
        self.remaining = None  # bytes still allowed by the app's Content-Length
        self.single_chunk = single_chunk
        self.done = False  # the app's Content-Length was reached

    def start_response(self, status, headers, exc_info=None):
        if exc_info:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # avoid a reference cycle
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        _check_status(status)
        _check_headers(headers)
        self.status = status
        self.headers = list(headers)
        return self.write

    def _send_headers(self, first_chunk):
        if self.status is None:
            raise AssertionError("the app wrote body bytes before calling start_response")
        headers = self.headers
        length = None
        for name, value in headers:
            if name.lower() == "content-length":
                length = int(value)
        if length is None and self.single_chunk and first_chunk is not None:
            # One-item iterable and no Content-Length: the length is known (PEP 3333).
            length = len(first_chunk)
            headers = headers + [("Content-Length", str(length))]
        if length is not None:
            self.remaining = length
        _wasmwsgi.start_response(self.status.encode("latin-1"), _wasmwsgi.encode_pairs(headers))
        self.sent = True

    def write(self, data):
        if type(data) is not bytes:
            if isinstance(data, (bytearray, memoryview)):
                data = bytes(data)
            else:
                raise TypeError("WSGI body chunks must be bytes, not %s" % type(data).__name__)
        if not self.sent:
            if not data:
                return
            self._send_headers(data)
        if not data or self.done:
            return
        if self.remaining is not None:
            data = data[:self.remaining]
            self.remaining -= len(data)
            if self.remaining <= 0:
                self.done = True
            if not data:
                return
        accepted = _wasmwsgi.write(data)
        if accepted < len(data):
            self.done = True

    def finish(self):
        if not self.sent:
            self._send_headers(b"" if self.single_chunk else None)


def _check_status(status):
    if type(status) is not str:
        raise TypeError("status must be str, not %s" % type(status).__name__)
    if len(status) < 4 or not status[:3].isdigit() or status[3] != " ":
        raise ValueError("status %r must look like '200 OK'" % (status,))
    _check_text("status", status)


def _check_headers(headers):
    if type(headers) is not list:
        raise TypeError("headers must be a list, not %s" % type(headers).__name__)
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise TypeError("each header must be a (name, value) tuple, not %r" % (item,))
        name, value = item
        if type(name) is not str or type(value) is not str:
            raise TypeError("header name and value must be str: %r" % (item,))
        _check_text("header %r" % name, name)
        _check_text("header %r" % name, value)


# Any character a status or header may not hold: controls other than tab, and
# everything past latin-1.
_BAD_TEXT = re.compile("[^\t\x20-\x7e\x80-\xff]")


def _check_text(what, s):
    bad = _BAD_TEXT.search(s)
    if bad is None:
        return
    if bad.group() > "\xff":
        raise ValueError("%s is not latin-1 encodable: %r" % (what, s))
    raise ValueError("%s contains control character %r" % (what, bad.group()))


def _environ():
    environ = _wasmwsgi.decode_pairs(_wasmwsgi.environ())
    environ["wsgi.version"] = (1, 0)
    environ["wsgi.input"] = Input()
    environ["wsgi.errors"] = Errors()
    # Each request runs in a fresh instance: one thread, one process, one request.
    environ["wsgi.multithread"] = False
    environ["wsgi.multiprocess"] = True
    # In request isolation every request starts from the snapshot, so the app runs
    # once in its interpreter; in instance isolation the interpreter serves many.
    environ["wsgi.run_once"] = _info.get("isolation") != "instance"
    environ["wsgi.input_terminated"] = True
    environ["wsgi.file_wrapper"] = FileWrapper
    return environ


def handle():
    # Every request starts from the same snapshot of this interpreter: give `random`
    # fresh entropy so no two requests share a sequence (os.urandom is the host's). 256
    # bits are plenty for a Mersenne Twister and cost a tenth of seed()'s 2,496 bytes.
    if "random" in sys.modules:
        sys.modules["random"].seed(int.from_bytes(os.urandom(32), "little"))
    environ = _environ()
    errors = environ["wsgi.errors"]
    try:
        result = None
        response = _Response(False)
        result = _app(environ, response.start_response)
        try:
            try:
                response.single_chunk = len(result) == 1
            except Exception:
                pass
            for data in result:
                response.write(data)
                if response.done:
                    break
            response.finish()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except BaseException:
        _print_exception(errors)
        return 1
    finally:
        errors.flush()
        _flush_stdio()
    return 0


def _print_exception(stream=None):
    import traceback

    text = traceback.format_exc()
    if stream is not None:
        stream.write(text)
        stream.flush()
    else:
        sys.stderr.write(text)


def _flush_stdio():
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            pass
