"""A tiny HTTP/1.1 client for the session tests: keeps every Set-Cookie header, and a cookie jar
that behaves like a browser for one host (name -> value, replaced by each Set-Cookie)."""
import os

from pycat_harness import raw_exchange

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(HERE)), "webapps", "examples", "WEB-INF", "classes")
# Flask and Django on container sessions: sample sources outside webapps/ (examples needs no framework)
FRAMEWORK_SAMPLES = os.path.join(os.path.dirname(os.path.dirname(HERE)), "samples", "framework-sessions")


def parse(data):
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, data[:200]
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    length = [int(v) for k, v in headers if k == "content-length"]
    if length:
        return status, headers, rest[:length[0]]
    if ("transfer-encoding", "chunked") in headers:
        body = b""
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            body += rest[:size]
            rest = rest[size + 2:]
        return status, headers, body
    return status, headers, rest


class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body
        self.text = body.decode("utf-8", "replace")

    def all(self, name):
        return [v for k, v in self.headers if k == name]

    @property
    def set_cookies(self):
        return self.all("set-cookie")

    def fields(self):
        """'id=X new=True count=2' -> dict."""
        return dict(p.split("=", 1) for p in self.text.split() if "=" in p)

    def __repr__(self):
        return "<Reply %d %r %r>" % (self.status, self.headers, self.text[:200])


def request(port, path, cookie=None, method="GET", headers=None):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: localhost", "Connection: close"]
    if cookie:
        lines.append("Cookie: %s" % cookie)
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return Reply(*parse(raw_exchange(port, data)))


class Browser:
    """Sends back the cookies it was given (one host, paths ignored)."""

    def __init__(self, port):
        self.port = port
        self.jar = {}

    def get(self, path, **kw):
        cookie = "; ".join("%s=%s" % kv for kv in self.jar.items()) or None
        reply = request(self.port, path, cookie=cookie, **kw)
        for header in reply.set_cookies:
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in header:
                self.jar.pop(name, None)
            else:
                self.jar[name] = value
        return reply


def cookie_attrs(header):
    """'JSESSIONID=X; Path=/a; HttpOnly' -> ('JSESSIONID', 'X', {'path': '/a', 'httponly': True})."""
    first, *attrs = [p.strip() for p in header.split(";")]
    name, _, value = first.partition("=")
    out = {}
    for a in attrs:
        k, sep, v = a.partition("=")
        out[k.lower()] = v if sep else True
    return name, value, out


def example_source(name):
    folder = FRAMEWORK_SAMPLES if os.path.exists(os.path.join(FRAMEWORK_SAMPLES, name)) else EXAMPLES
    with open(os.path.join(folder, name)) as fh:
        return fh.read()
