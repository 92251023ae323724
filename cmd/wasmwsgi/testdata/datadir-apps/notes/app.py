"""SQLite in /data for TestDataDir: the test grants this app a data folder under a
temporary data_root.

    GET /insert?rows=N&tag=T  one transaction adding N rows, then a read-modify-write of
                              a counter in two separate statements
    GET /count                {"rows": ..., "counter": ..., "tags": ...}
    GET /probe                what the sandbox lets the app do around /data
    GET /journal              the journal modes SQLite accepts here
    GET /stuck                a transaction that writes to the database file, then never
                              ends: the time limit stops it mid-transaction
"""
import json
import os
import sqlite3
import time

DB = "/data/notes.sqlite3"


def _connect():
    con = sqlite3.connect(DB, timeout=30)
    con.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, tag TEXT, n INTEGER)")
    con.execute("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER)")
    con.execute("INSERT OR IGNORE INTO counter VALUES (1, 0)")
    con.commit()
    return con


def _insert(query):
    rows = int(query.get("rows", "1"))
    tag = query.get("tag", "")
    con = _connect()
    with con:
        con.executemany("INSERT INTO rows (tag, n) VALUES (?, ?)", [(tag, i) for i in range(rows)])
    # A lost-update trap: read, wait, write back. Only a lock held across both
    # statements (wasmwsgi holds it for the whole request) keeps every increment.
    value = con.execute("SELECT value FROM counter WHERE id = 1").fetchone()[0]
    time.sleep(0.01)
    with con:
        con.execute("UPDATE counter SET value = ? WHERE id = 1", (value + 1,))
    con.close()
    return {"inserted": rows}


def _count():
    con = _connect()
    out = {
        "rows": con.execute("SELECT count(*) FROM rows").fetchone()[0],
        "counter": con.execute("SELECT value FROM counter").fetchone()[0],
        "tags": con.execute("SELECT count(DISTINCT tag) FROM rows").fetchone()[0],
        "integrity": con.execute("PRAGMA integrity_check").fetchone()[0],
    }
    con.close()
    return out


def _try(fn):
    try:
        return "ok: %r" % (fn(),)
    except Exception as e:  # the test looks at the exception's name
        return "%s: %s" % (type(e).__name__, e)


def _probe():
    def write(path):
        with open(path, "w") as f:
            return f.write("x")

    def read(path):
        with open(path) as f:
            return f.read(20)

    return {
        "write_data": _try(lambda: write("/data/probe.txt")),
        "read_data": _try(lambda: read("/data/probe.txt")),
        "mkdir_data": _try(lambda: os.makedirs("/data/sub/dir", exist_ok=True)),
        "listdir_data": _try(lambda: sorted(os.listdir("/data"))),
        "dotdot_read": _try(lambda: read("/data/../../../etc/passwd")),
        "dotdot_write": _try(lambda: write("/data/../escaped.txt")),
        "symlink": _try(lambda: os.symlink("/etc/passwd", "/data/link")),
        "hardlink": _try(lambda: os.link("/data/probe.txt", "/data/hard")),
        "chmod_root": _try(lambda: os.chmod("/data", 0o777)),
        "write_app": _try(lambda: write("/app/new.txt")),
        "write_root": _try(lambda: write("/escaped.txt")),
        "host_link_out": _try(lambda: read("/data/outside-link")),
    }


def _stuck():
    con = _connect()
    # A tiny page cache makes SQLite write changed pages to the database file before
    # the commit (after saving the originals in the rollback journal).
    con.execute("PRAGMA cache_size=10")
    con.execute("BEGIN")
    con.executemany("INSERT INTO rows (tag, n) VALUES ('stuck', ?)", [(i,) for i in range(20000)])
    while True:
        pass


def _journal():
    con = _connect()
    out = {mode: con.execute("PRAGMA journal_mode=%s" % mode).fetchone()[0] for mode in ("wal", "truncate", "persist", "delete")}
    con.close()
    return out


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    query = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
    handlers = {"/insert": lambda: _insert(query), "/count": _count, "/probe": _probe, "/journal": _journal,
                "/stuck": _stuck}
    if path not in handlers:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    body = json.dumps(handlers[path]()).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
