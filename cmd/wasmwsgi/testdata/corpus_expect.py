"""Turn the expectation files of the gunicorn request corpus into JSON for corpus_test.go.

Usage: python3 corpus_expect.py CORPUS_DIR

Each valid/NNN.py and invalid/NNN.py is Python written for gunicorn's own test harness.
It is run here with stand-ins for what it uses from gunicorn: uri(raw), Config (which
records the settings a file asks for) and the error classes of gunicorn.http.errors
(any name gives a class of that name). Nothing from gunicorn is imported.

Output, one JSON object on stdout: {"valid": {...}, "invalid": {...}} keyed by file id.
A valid entry holds "cfg" (settings set on Config) and "requests" (a list, one per
pipelined request); an invalid entry holds "cfg" and "error" (the class name). Bytes
are written as latin-1 strings, so every byte value survives JSON.
"""
import json
import os
import sys
import types


class Config:
    """Records cfg.set(name, value) calls."""

    def __init__(self):
        self.settings = {}

    def set(self, name, value):
        self.settings[name] = value


class _Errors(types.ModuleType):
    """gunicorn.http.errors: every attribute is an exception class named after it."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        cls = type(name, (Exception,), {})
        setattr(self, name, cls)
        return cls


def _install_stubs():
    pkg = types.ModuleType("gunicorn")
    pkg.__path__ = []
    config = types.ModuleType("gunicorn.config")
    config.Config = Config
    http = types.ModuleType("gunicorn.http")
    http.__path__ = []
    errors = _Errors("gunicorn.http.errors")
    pkg.config, pkg.http, http.errors = config, http, errors
    sys.modules.update({
        "gunicorn": pkg,
        "gunicorn.config": config,
        "gunicorn.http": http,
        "gunicorn.http.errors": errors,
    })


def uri(raw):
    """Split a request target the way the expectations mean it.

    origin-form "/p?q#f", asterisk-form "*", absolute-form "http://h:port/p?q" and
    authority-form "host:port" (CONNECT).
    """
    parts = {"raw": raw, "scheme": "", "host": None, "port": None, "path": "", "query": "", "fragment": ""}
    rest = raw
    if "://" in rest and not rest.startswith("/"):
        scheme, rest = rest.split("://", 1)
        parts["scheme"] = scheme
        cut = min([i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0] or [len(rest)])
        authority, rest = rest[:cut], rest[cut:]
        _host_port(parts, authority.rpartition("@")[2])
    elif not rest.startswith("/") and rest != "*":
        _host_port(parts, rest)
        return parts
    rest, _, parts["fragment"] = rest.partition("#")
    parts["path"], _, parts["query"] = rest.partition("?")
    return parts


def _host_port(parts, authority):
    if authority.startswith("["):
        host, _, port = authority[1:].partition("]")
        port = port[1:]
    else:
        host, _, port = authority.partition(":")
    parts["host"] = host
    parts["port"] = int(port) if port else None


def _text(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def _request(d):
    out = {
        "method": d["method"],
        "uri": d["uri"],
        "version": list(d["version"]),
        "headers": [[n, _text(v)] for n, v in d["headers"]],
        "body": _text(d["body"]),
    }
    if "trailers" in d:
        out["trailers"] = [[n, _text(v)] for n, v in d["trailers"]]
    return out


def load(path):
    with open(path, encoding="utf-8") as f:
        source = f.read()
    scope = {"uri": uri, "cfg": None, "__name__": "corpus_expectation", "__file__": path}
    exec(compile(source, path, "exec"), scope)
    cfg = scope.get("cfg")
    settings = cfg.settings if isinstance(cfg, Config) else {}
    return scope["request"], settings


def main(corpus):
    _install_stubs()
    result = {"valid": {}, "invalid": {}}
    for kind in ("valid", "invalid"):
        folder = os.path.join(corpus, kind)
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".py"):
                continue
            ident = name[:-3]
            request, settings = load(os.path.join(folder, name))
            entry = {"cfg": settings}
            if kind == "valid":
                reqs = request if isinstance(request, list) else [request]
                entry["requests"] = [_request(r) for r in reqs]
            else:
                entry["error"] = request.__name__
            result[kind][ident] = entry
    json.dump(result, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: corpus_expect.py CORPUS_DIR")
    main(sys.argv[1])
