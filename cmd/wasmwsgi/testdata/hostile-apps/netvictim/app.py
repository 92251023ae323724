"""A well-behaved tenant that uses its outbound grant: one round trip to an echo server
per request (its port in the query string)."""
import socket
from urllib.parse import parse_qs


def application(environ, start_response):
    port = int(parse_qs(environ.get("QUERY_STRING", ""))["port"][0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"fine")
        got = b""
        while len(got) < 4:
            chunk = s.recv(4 - len(got))
            if not chunk:
                break
            got += chunk
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [got]
