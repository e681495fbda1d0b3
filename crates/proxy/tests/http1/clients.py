"""Real Python HTTP clients through the proxy: `clients.py PORT http.client|requests`.

One connection (or one pooled session) sends a request in every body framing,
a denied one, and requests whose responses carry no body. Prints one JSON
object per request: status, body (latin-1), and the client's local port, so
the caller can tell whether the connection was reused. Every call has a 5 s
timeout: a request stuck in the proxy fails instead of hanging.
"""

import http.client
import json
import sys

PORT = int(sys.argv[1])
TIMEOUT = 5


def chunks():
    yield b"ab"
    yield b"cd"


# (method, path, body, extra headers); None body with POST/PUT still sends
# `Content-Length: 0` in both clients.
REQUESTS = [
    ("POST", "/open/empty", b"", {}),
    ("PUT", "/open/none", None, {}),
    ("POST", "/open/length", b"x" * 100000, {}),
    ("POST", "/open/chunked", chunks, {}),
    ("GET", "/public", None, {}),
    ("POST", "/private", b"", {}),
    ("POST", "/open/after-deny", b"", {}),
    ("HEAD", "/open/head", None, {}),
    ("POST", "/open/created", b"", {"X-Reply-Status": "201"}),
    ("GET", "/public", None, {}),
]


def with_http_client():
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=TIMEOUT)
    for method, path, body, headers in REQUESTS:
        chunked = callable(body)
        conn.request(method, path, body=body() if chunked else body,
                     headers=headers, encode_chunked=chunked)
        local_port = conn.sock.getsockname()[1]
        response = conn.getresponse()
        yield response.status, response.read(), local_port


def with_requests():
    import requests

    session = requests.Session()
    for method, path, body, headers in REQUESTS:
        response = session.request(
            method, f"http://127.0.0.1:{PORT}{path}",
            data=body() if callable(body) else body,
            headers=headers, timeout=TIMEOUT)
        yield response.status_code, response.content, None


CLIENTS = {"http.client": with_http_client, "requests": with_requests}

for status, body, local_port in CLIENTS[sys.argv[2]]():
    print(json.dumps({"status": status, "body": body.decode("latin-1"),
                      "port": local_port}), flush=True)
