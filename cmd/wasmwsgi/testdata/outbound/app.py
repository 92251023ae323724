"""Outbound sockets from inside the sandbox: the stdlib's socket, select and selectors,
and, when vendored, redis-py, pg8000, PyMySQL and SQLAlchemy. Each path answers one line of text."""

import errno
import select
import selectors
import socket
from urllib.parse import parse_qs


def echo(q):
    port = int(q["port"])
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    nodelay = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    peer = s.getpeername()
    s.sendall(b"hello ")
    r, _, _ = select.select([s], [], [], 5)
    first = s.recv(100) if r else b"(select timed out)"
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ)
    s.sendall(b"world\n")
    events = sel.select(5)
    f = s.makefile("rwb")
    line = f.readline()
    buf = bytearray(8)
    s.setblocking(False)
    try:
        s.recv_into(buf)
        nonblocking = "data?"
    except BlockingIOError:
        nonblocking = "would block"
    s.setblocking(True)
    s.settimeout(0.2)
    try:
        s.recv(10)
        timed = "no timeout"
    except socket.timeout:
        timed = "timed out"
    s.shutdown(socket.SHUT_WR)
    s.settimeout(5)
    eof = s.recv(10)
    f.close()
    s.close()
    return "%s %r %r %d %r %s %s %r nodelay=%d peer=%s" % (
        "ok", first, line, len(events), bytes(buf[:0]), nonblocking, timed, eof, nodelay, peer[0])


def attempt(q):
    host, port = q["host"], int(q["port"])
    try:
        s = socket.create_connection((host, port), timeout=3)
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)
    s.close()
    return "connected"


def resolve(q):
    try:
        return " ".join(sorted({ai[4][0] for ai in socket.getaddrinfo(q["host"], 80)}))
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)


def hang(q):
    # Blocks in recv until the request's time limit: nothing is ever sent back.
    s = socket.create_connection(("127.0.0.1", int(q["port"])))
    s.recv(1)
    return "recv returned"


_kept = []


def keep(q):
    # Leaves a connection open at the end of the request.
    _kept.append(socket.create_connection(("127.0.0.1", int(q["port"]))))
    return "kept %d" % len(_kept)


def many(q):
    socks = []
    try:
        for _ in range(int(q["n"])):
            socks.append(socket.create_connection(("127.0.0.1", int(q["port"]))))
        return "opened %d" % len(socks)
    except OSError as e:
        return "after %d: %s: %s" % (len(socks), type(e).__name__, e)
    finally:
        for s in socks:
            s.close()


def redis_incr(q):
    import redis

    r = redis.Redis(host="127.0.0.1", port=int(q["port"]), socket_timeout=5)
    r.delete("hits")
    r.incr("hits")
    return "hits=%d" % r.incr("hits")


def pg(q):
    import pg8000

    conn = pg8000.connect(user="postgres", host="127.0.0.1", port=int(q["port"]), database="postgres")
    cur = conn.cursor()
    cur.execute("CREATE TEMPORARY TABLE notes (id serial, body text)")
    cur.execute("INSERT INTO notes (body) VALUES (%s), (%s)", ("first", "second"))
    cur.execute("SELECT body FROM notes ORDER BY id")
    rows = [r[0] for r in cur.fetchall()]
    conn.commit()
    conn.close()
    return "rows=" + ",".join(rows)


ROUTES = {"/echo": echo, "/try": attempt, "/resolve": resolve, "/hang": hang, "/keep": keep, "/many": many,
          "/redis": redis_incr, "/pg": pg}


def application(environ, start_response):
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    body = ROUTES[environ["PATH_INFO"]](q).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def https(q):
    import ssl
    import urllib.request

    try:
        with urllib.request.urlopen("https://127.0.0.1:%s/hello" % q["port"], timeout=5) as r:
            return "%d %s" % (r.status, r.read().decode())
    except Exception as e:
        reason = getattr(e, "reason", e)
        return "%s: %s" % (type(reason).__name__, reason)


def tls_socket(q):
    import socket
    import ssl

    ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", int(q["port"]))) as raw:
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        s.sendall(b"GET /hello HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        cert = s.getpeercert()
        return "%s %s %s %s %s" % (cert["subjectAltName"], cert["issuer"][0][0][1], s.version(),
                                   s.selected_alpn_protocol(), data.split(b"\r\n")[0].decode())


def tls_mode(q):
    """A GET over TLS with the context the query asks for: mode "default", "noname"
    (check_hostname off) or "none" (_create_unverified_context), plus the CA file ca."""
    import socket
    import ssl

    if q.get("mode") == "none":
        ctx = ssl._create_unverified_context()
    else:
        ctx = ssl.create_default_context(cafile=q.get("ca"))
        if q.get("mode") == "noname":
            ctx.check_hostname = False
    try:
        with socket.create_connection(("127.0.0.1", int(q["port"]))) as raw:
            s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            s.sendall(b"GET /hello HTTP/1.0\r\nHost: x\r\n\r\n")
            line = s.makefile("rb").readline().decode().strip()
            cert = s.getpeercert()
            der = s.getpeercert(binary_form=True)
            issuer = cert["issuer"][0][0][1] if cert else "{}"
            same = ssl.PEM_cert_to_DER_cert(ssl.DER_cert_to_PEM_cert(der)) == der
            return "ok %s der=%s %s" % (issuer, same, line)
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)


ROUTES.update({"/https": https, "/tls": tls_socket, "/tlsmode": tls_mode})


def requests_https(q):
    import requests

    # Debian's certifi names /etc/ssl/certs/ca-certificates.crt, which the sandbox does
    # not have, and requests refuses a bundle path that does not exist: the app names
    # its CA file (trusted besides the host's roots), or turns verification off.
    verify = {"": True, "off": False}.get(q.get("verify", ""), q.get("verify"))
    try:
        r = requests.get("https://127.0.0.1:%s/hello" % q["port"], timeout=5, verify=verify)
        return "%d %s" % (r.status_code, r.text)
    except Exception as e:
        return type(e).__name__


ROUTES.update({"/requests": requests_https})


def traffic(q):
    # n connections in turn, each sending size bytes and reading them back.
    port, n, size = int(q["port"]), int(q["n"]), int(q["size"])
    got = 0
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"x" * size)
            s.shutdown(socket.SHUT_WR)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += len(chunk)
    return "%d connections, %d bytes back" % (n, got)


ROUTES.update({"/traffic": traffic})


def mysql(q):
    import pymysql

    try:
        conn = pymysql.connect(host="127.0.0.1", port=int(q["port"]), user=q["user"], password=q["password"],
                               database=q["db"], connect_timeout=5, read_timeout=5, write_timeout=5)
    except pymysql.err.OperationalError as e:
        return "%s %d" % (type(e).__name__, e.args[0])
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS notes")
        cur.execute("CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(64) NOT NULL)"
                    " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
        cur.executemany("INSERT INTO notes (body) VALUES (%s)", ["first", "it's second \u2615"])
        conn.commit()
        conn.begin()
        cur.execute("INSERT INTO notes (body) VALUES (%s)", ("rolled back",))
        cur.execute("SELECT COUNT(*) FROM notes")
        inside = cur.fetchone()[0]
        conn.rollback()
        cur.execute("SELECT body FROM notes ORDER BY id")
        rows = [r[0] for r in cur.fetchall()]
    server = conn.get_server_info()
    conn.close()
    return "server=%s in-transaction=%d after-rollback=%s" % (
        "MariaDB" if "MariaDB" in server else server, inside, ",".join(rows))


try:
    # Vendored in the "orm" app only; imported here, it is part of the app's snapshot.
    import sqlalchemy
    from sqlalchemy import Column, Integer, String, create_engine
    from sqlalchemy.orm import Session, declarative_base
except ImportError:
    sqlalchemy = None
else:
    Base = declarative_base()

    class Note(Base):
        __tablename__ = "orm_notes"
        id = Column(Integer, primary_key=True)
        body = Column(String(64), nullable=False)


def orm(q):
    engine = create_engine(q["url"], future=True)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all([Note(body="first"), Note(body="second")])
        session.commit()
        session.add(Note(body="rolled back"))
        session.flush()
        session.rollback()
        session.add(Note(body="third"))
        session.commit()
        rows = [n.body for n in session.query(Note).order_by(Note.id)]
        s_rows = [n.body for n in session.query(Note).filter(Note.body.like("s%"))]
    engine.dispose()
    return "sqlalchemy=%s dialect=%s+%s driver=%s rows=%s s-rows=%s" % (
        sqlalchemy.__version__, engine.dialect.name, engine.dialect.driver, engine.dialect.dbapi.__version__,
        ",".join(rows), ",".join(s_rows))


ROUTES.update({"/mysql": mysql, "/orm": orm})

def raw_connect(q):
    # socket.connect itself, without create_connection's getaddrinfo first: a name or
    # an address goes to the host as written.
    host, port = q["host"], int(q["port"])
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, port))
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)
    finally:
        s.close()
    return "connected"


def churn(q):
    # Opens and closes connections one after another until one is refused.
    port, made = int(q["port"]), 0
    try:
        while made < 1000:
            socket.create_connection(("127.0.0.1", port), timeout=3).close()
            made += 1
        return "opened %d" % made
    except OSError as e:
        return "after %d: %s: %s" % (made, type(e).__name__, e)


def silence(q):
    # Waits for an answer that never comes, with a socket timeout.
    s = socket.create_connection(("127.0.0.1", int(q["port"])), timeout=3)
    s.sendall(b"anyone there?")
    s.settimeout(float(q["timeout"]))
    try:
        s.recv(10)
        return "answered"
    except OSError as e:
        return "%s: %s" % (type(e).__name__, e)
    finally:
        s.close()


def read_all(q):
    # Reads a server that never stops sending.
    s = socket.create_connection(("127.0.0.1", int(q["port"])), timeout=3)
    buf, total = bytearray(1 << 16), 0
    try:
        while True:
            n = s.recv_into(buf)
            if n == 0:
                return "end of stream after %d" % total
            total += n
    except OSError as e:
        return "after %d: %s: %s" % (total, type(e).__name__, e)


def send_all(q):
    # Sends without end to a server that reads everything.
    s = socket.create_connection(("127.0.0.1", int(q["port"])), timeout=3)
    chunk, total = b"x" * (1 << 16), 0
    try:
        while True:
            s.sendall(chunk)
            total += len(chunk)
    except OSError as e:
        return "after %d: %s: %s" % (total, type(e).__name__, e)


ROUTES.update({"/raw": raw_connect, "/churn": churn, "/silence": silence, "/readall": read_all, "/sendall": send_all})


def addresses(q):
    # Address parsing as CPython's socket module does it, and which modules connecting
    # by an IPv4 address and a name imports in the request.
    import sys

    before = set(sys.modules)
    out = []
    for s in ["127.0.0.1", "255.255.255.255", "01.2.3.4", "256.1.1.1", "1.2.3", "1.2.3.4.5", "1.2.3.x", "١.2.3.4"]:
        try:
            out.append(socket.inet_pton(socket.AF_INET, s).hex())
        except OSError:
            out.append("OSError")
    for b in [b"\x7f\x00\x00\x01", b"abc"]:
        try:
            out.append(socket.inet_ntop(socket.AF_INET, b))
        except ValueError:
            out.append("ValueError")
    out.append(socket.getaddrinfo(b"127.0.0.1", 80)[0][4][0])
    port = int(q["port"])
    socket.create_connection(("127.0.0.1", port), timeout=3).close()
    try:
        socket.socket().connect(("Localhost", port))
    except PermissionError:
        pass
    imported = sorted({"ipaddress", "encodings.idna", "unicodedata"} & (set(sys.modules) - before))
    return " ".join(out) + " imported=" + ",".join(imported)


ROUTES.update({"/addresses": addresses})


def unix(q):
    # AF_UNIX sockets can be made, as on Linux, but reach nothing: CPython's test helpers
    # (socket_helper.skip_unless_bind_unix_socket) and asyncio make one and expect bind
    # or connect, not the constructor, to refuse.
    out = []
    with socket.socket(socket.AF_UNIX) as s:
        out.append("family=%s type=%s" % (s.family.name, s.type.name))
        for op, arg in (("bind", "/tmp/s.sock"), ("connect", "/tmp/s.sock")):
            try:
                getattr(s, op)(arg)
                out.append(op + " worked")
            except PermissionError as e:
                out.append("%s PermissionError %s" % (op, e.errno == errno.EACCES))
    try:
        socket.socket(socket.AF_PACKET if hasattr(socket, "AF_PACKET") else 17)
    except OSError as e:
        out.append("packet %s" % (e.errno == errno.EAFNOSUPPORT))
    a, b = socket.socketpair()
    a.sendall(b"x")
    out.append("pair %r" % b.recv(1))
    a.close(), b.close()
    return " ".join(out)


ROUTES.update({"/unix": unix})


def loopback(q):
    # A TCP listener on loopback lives inside the instance: connections this instance
    # makes to its port are accepted here; the host opens no port.
    import asyncio

    out = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    host, port = srv.getsockname()
    out.append("bound %s %s" % (host, 32768 <= port <= 60999))
    c = socket.create_connection(("127.0.0.1", port))
    a, peer = srv.accept()
    out.append("peer %s %s" % (peer == c.getsockname(), a.getsockname() == c.getpeername() == (host, port)))
    c.sendall(b"ping")
    a.sendall(a.recv(4).upper())
    out.append(c.recv(4).decode())
    c.close()
    out.append("eof %r" % a.recv(4))
    a.close()
    srv.setblocking(False)
    try:
        srv.accept()
    except BlockingIOError:
        out.append("accept would block")
    for addr in (("127.0.0.1", port), ("192.0.2.1", 0)):
        try:
            socket.socket().bind(addr)
        except OSError as e:
            out.append(errno.errorcode[e.errno])
    srv.close()

    async def served():
        async def upper(r, w):
            w.write((await r.readline()).upper())
            await w.drain()
            w.close()

        server = await asyncio.start_server(upper, "localhost", 0, family=socket.AF_INET)
        p = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("localhost", p)
        w.write(b"asyncio\n")
        line = await r.readline()
        w.close()
        server.close()
        await server.wait_closed()
        return line.decode().strip(), p

    line, p = asyncio.run(served())
    out.append(line)
    # The listener is gone with its socket: the port is the host's again, where this
    # app is granted nothing.
    try:
        socket.create_connection(("127.0.0.1", p))
    except PermissionError:
        out.append("closed port: host denies")
    return " ".join(out)


ROUTES.update({"/loopback": loopback})


HELD = []


def hold(q):
    # A listener kept past the request, for as long as the instance lives (instance
    # isolation): its port is the instance's, not the host's.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    HELD.append(s)
    return str(s.getsockname()[1])


ROUTES.update({"/hold": hold})
