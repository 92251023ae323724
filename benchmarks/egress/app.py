"""The app of the outbound benchmarks (benchmarks/bench.sh), served by wasmwsgi and by
gunicorn alike: /redis answers one Redis GET, /pg one PostgreSQL SELECT, each over a
connection the process (or, in wasmwsgi, the instance) makes at its first use and then
keeps; in wasmwsgi's request isolation that is a new connection for every request.
/redis-fresh and /pg-fresh do the same and then close the connection, so that every
request connects, as in request isolation. /rtt?n=N times N PING round trips to Redis on a socket of its own and answers the
microseconds one took; round_trips is the same loop for native Python.

REDIS_PORT and PG_PORT name the servers, on 127.0.0.1."""
import os
import socket
import time
from urllib.parse import parse_qs

import pg8000
import redis

_redis = None
_pg = None


def redis_get():
    global _redis
    if _redis is None:
        _redis = redis.Redis(host="127.0.0.1", port=int(os.environ["REDIS_PORT"]))
    return _redis.get("greeting")


def pg_select():
    global _pg
    if _pg is None:
        _pg = pg8000.connect(user="postgres", host="127.0.0.1", port=int(os.environ["PG_PORT"]), database="postgres")
        _pg.autocommit = True
    cur = _pg.cursor()
    cur.execute("SELECT body FROM greeting WHERE id = %s", (1,))
    return cur.fetchone()[0].encode()


def close_connections():
    global _redis, _pg
    if _redis is not None:
        _redis.close()
        _redis.connection_pool.disconnect()
    if _pg is not None:
        _pg.close()
    _redis = _pg = None


def _ping(s):
    s.sendall(b"PING\r\n")
    got = b""
    while not got.endswith(b"\r\n"):
        chunk = s.recv(64)
        if not chunk:
            raise ConnectionError("redis closed the connection")
        got += chunk


def round_trips(port, n):
    """Microseconds per PING round trip, over n after a few to warm up."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for _ in range(50):
            _ping(s)
        start = time.perf_counter()
        for _ in range(n):
            _ping(s)
        return (time.perf_counter() - start) / n * 1e6
    finally:
        s.close()


def application(environ, start_response):
    route = environ.get("PATH_INFO", "").rstrip("/").rsplit("/", 1)[-1]
    fresh = route.endswith("-fresh")
    route = route.removesuffix("-fresh")
    if route == "redis":
        body = redis_get()
    elif route == "pg":
        body = pg_select()
    elif route == "rtt":
        n = int(parse_qs(environ.get("QUERY_STRING", "")).get("n", ["1000"])[0])
        body = b"%.1f" % round_trips(int(os.environ["REDIS_PORT"]), n)
    else:
        body = b"routes: /redis /pg /redis-fresh /pg-fresh /rtt?n=N"
    if fresh:
        close_connections()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
