"""HTTP for tests: one request to a node, and ``Client``, a simulated user with a cookie jar.

A Client is a browser behind a sticky load balancer: its cookies are per user, not per node
(browsers do not separate cookies by port, and every test node is 127.0.0.1), so sending the
user's next request to another node is what the balancer does when the first one dies, and
sending one to a chosen node is how a test looks at a replica::

    alice = Client(cluster[0])
    alice.post("/shop/login", data={"user": "alice"})
    owner = cluster.node_for(alice)              # the node named by the id's .jvmRoute
    owner.kill()
    assert alice.get("/shop/cart", node=cluster.others(owner)[0]).json() == {...}

Plain stdlib (http.client); one connection per request (``Connection: close``), so threads share
nothing.
"""
import http.client
import json as _json
import time
import urllib.parse

DEFAULT_TIMEOUT = 10.0


class Response:
    """status, reason, headers (a list of pairs, as sent), body (bytes); ``text``, ``json()``,
    ``header(name)``; ``cookies``: {name: value} of the Set-Cookie headers ("" for a deletion)."""

    def __init__(self, status, reason, headers, body, url=None):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.url = url
        self.cookies = {}
        self.cookie_attrs = {}
        for name, value in headers:
            if name.lower() == "set-cookie":
                cookie, attrs = parse_set_cookie(value)
                if cookie is not None:
                    self.cookies[cookie[0]] = cookie[1]
                    self.cookie_attrs[cookie[0]] = attrs

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return _json.loads(self.body.decode("utf-8"))

    def header(self, name, default=None):
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return default

    def __repr__(self):
        return "<Response %s %s %r>" % (self.status, self.url or "", self.body[:200])


def parse_set_cookie(value):
    """((name, value), {attribute: value}) of one Set-Cookie header; the value is "" when the header
    deletes the cookie (Max-Age=0 or an Expires in the past)."""
    parts = [p.strip() for p in value.split(";")]
    name, sep, val = parts[0].partition("=")
    if not sep or not name.strip():
        return None, {}
    attrs = {}
    for part in parts[1:]:
        key, _, v = part.partition("=")
        attrs[key.strip().lower()] = v.strip()
    val = val.strip()
    if len(val) >= 2 and val[0] == val[-1] == '"':
        val = val[1:-1]
    if attrs.get("max-age", "").lstrip("-").isdigit() and int(attrs["max-age"]) <= 0:
        val = ""
    elif "expires" in attrs:
        try:
            from email.utils import parsedate_to_datetime
            if parsedate_to_datetime(attrs["expires"]).timestamp() < time.time():
                val = ""
        except (TypeError, ValueError):
            pass
    return (name.strip(), val), attrs


def address_of(target):
    """(host, port) of a Node, an ``http://host:port`` URL, a (host, port) pair or a port number."""
    if hasattr(target, "http_port"):
        if target.http_port is None:
            raise ValueError("%r has no HTTP connector" % (target,))
        return "127.0.0.1", target.http_port
    if isinstance(target, int):
        return "127.0.0.1", target
    if isinstance(target, tuple):
        return target
    parts = urllib.parse.urlsplit(str(target))
    return parts.hostname or "127.0.0.1", parts.port or 80


def request(target, method, path, body=None, headers=None, timeout=DEFAULT_TIMEOUT):
    """One HTTP request to ``target`` (see ``address_of``); raises OSError / http.client errors when
    nothing answers."""
    host, port = address_of(target)
    headers = dict(headers or {})
    headers.setdefault("Connection", "close")
    if isinstance(body, str):
        body = body.encode("utf-8")
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.reason, resp.getheaders(), data,
                        "http://%s:%d%s" % (host, port, path))
    finally:
        conn.close()


def try_request(target, method, path, body=None, headers=None, timeout=DEFAULT_TIMEOUT):
    """``request``, or None while nothing answers (refused, reset, timed out)."""
    try:
        return request(target, method, path, body, headers, timeout)
    except (OSError, http.client.HTTPException):
        return None


class Client:
    """One simulated user (module doc). ``node`` is where requests go unless a call names another;
    ``cookie_name`` is the session cookie (``session_id``, ``route``)."""

    def __init__(self, node=None, name="user", cookie_name="JSESSIONID", timeout=DEFAULT_TIMEOUT):
        self.node = node
        self.name = name
        self.cookie_name = cookie_name
        self.timeout = timeout
        self.jar = {}               # (name, path) -> value
        self.history = []           # (node, method, path, status), in order

    def __repr__(self):
        return "<Client %s session=%s>" % (self.name, self.session_id)

    # -- cookies -------------------------------------------------------------------------------------
    def cookie_header(self, path):
        """The Cookie header a browser sends for ``path``: matching paths, longest first."""
        found = []
        for (name, cpath), value in self.jar.items():
            cpath = cpath or "/"
            if path == cpath or path.startswith(cpath.rstrip("/") + "/") or cpath == "/":
                found.append((len(cpath), name, value))
        found.sort(reverse=True)
        return "; ".join("%s=%s" % (name, value) for _, name, value in found) or None

    def _store(self, response, path):
        for name, value in response.cookies.items():
            attrs = response.cookie_attrs.get(name, {})
            cpath = attrs.get("path") or path.rsplit("/", 1)[0] or "/"
            if value == "":
                self.jar.pop((name, cpath), None)
            else:
                self.jar[(name, cpath)] = value

    def cookie(self, name=None, path=None):
        """The value of cookie ``name`` (default: the session cookie), for ``path`` if given."""
        name = name or self.cookie_name
        values = [(len(p or ""), v) for (n, p), v in self.jar.items()
                  if n == name and (path is None or p == path)]
        return max(values)[1] if values else None

    @property
    def session_id(self):
        """The session cookie's value (the longest-path one if several apps set one), or None."""
        return self.cookie()

    @property
    def route(self):
        """The jvmRoute suffix of the session id (``<id>.node2`` -> "node2"), or None."""
        sid = self.session_id
        return sid.rsplit(".", 1)[1] if sid and "." in sid else None

    def forget(self):
        """Drop every cookie (a new browser)."""
        self.jar.clear()

    # -- requests ------------------------------------------------------------------------------------
    def request(self, method, path, node=None, data=None, json=None, body=None, headers=None,
                follow_redirects=False, expect=None, timeout=None):
        """Send the request with this user's cookies to ``node`` (default: the Client's), keep the
        cookies it sets. ``data``: a dict sent as a form; ``json``: sent as JSON; ``expect``: the
        status to assert. Redirects are followed (to the same node) only with ``follow_redirects``."""
        target = node if node is not None else self.node
        if target is None:
            raise ValueError("no node: pass node= or create the Client with one")
        headers = dict(headers or {})
        if data is not None:
            body = urllib.parse.urlencode(data, doseq=True)
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif json is not None:
            body = _json.dumps(json)
            headers.setdefault("Content-Type", "application/json")
        for _ in range(10):
            cookie = self.cookie_header(urllib.parse.urlsplit(path).path or "/")
            if cookie:
                headers["Cookie"] = cookie
            else:
                headers.pop("Cookie", None)
            resp = request(target, method, path, body, headers, timeout or self.timeout)
            self._store(resp, urllib.parse.urlsplit(path).path or "/")
            self.history.append((getattr(target, "name", target), method, path, resp.status))
            location = resp.header("Location")
            if not (follow_redirects and resp.status in (301, 302, 303, 307, 308) and location):
                break
            path = urllib.parse.urlsplit(urllib.parse.urljoin(path, location))
            path = path.path + ("?" + path.query if path.query else "")
            if resp.status in (301, 302, 303):
                method, body = "GET", None
                headers.pop("Content-Type", None)
        if expect is not None:
            assert resp.status == expect, "%s %s %s on %s -> %d (expected %d): %r" % (
                self.name, method, path, getattr(target, "name", target), resp.status, expect, resp.body[:500])
        return resp

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def put(self, path, **kwargs):
        return self.request("PUT", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)
