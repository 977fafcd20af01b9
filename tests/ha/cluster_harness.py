"""Harness for end-to-end session replication tests: N real `pycat run` nodes on 127.0.0.1 in one
cluster of their own, a distributable test app on each, HTTP users with a cookie each, and a
side-effect-free look at any node's local copy of a session.

    def test_something(cluster_factory):
        cluster = cluster_factory(3, send_options=6)        # node1..node3, not started
        a, b, c = cluster.nodes
        cluster.start()                                      # all, waits for startup and full membership
        user = User()
        sid = user.get(a, "/set?name=k&value=v").json["id"]      # GET /app/set... on node1
        assert b.peek(sid)["attributes"] == {"k": "v"}

Each node is pycat.testing's Node (a ``pycat run`` subprocess on a fresh base, free ports, dies
with the test process) built by pycat.testing's Cluster: node_helpers' SERVER_XML with
``jvmRoute="nodeN"`` (through catalina.properties) and ``backgroundProcessorDelay="1"`` (expiry
runs every second), and the cluster how-to's <Cluster> on a multicast group and port of its own,
a receiver on a held port (``autoBind="1"``: a restarted node comes back on the same port). The
<Manager> is the how-to's DeltaManager with ``processExpiresFrequency="1"`` (and
``maxInactiveInterval`` when asked). ``binder=False`` leaves out the JvmRouteBinderValve <Valve>
(the ReplicationValve stays, so the cluster adds no default valve); ``channel_only=True`` writes a
<Cluster> holding only its <Channel> (the cluster then applies Tomcat's defaults itself).

``Cluster.start`` starts the nodes one after the other, each once the previous one serves (a
starting node asks a running one for the sessions); ``together=True`` starts them at once.

The test app (``webapps/<name>``, ``<distributable/>``, one WSGI callable mapped to ``/*``) answers
JSON; query string arguments:

    /set?name=K&value=V[&mii=SECONDS]  session[K] = V (creates); mii sets the session's own
                                       max inactive interval        -> {"id"}
    /get?name=K                        never creates               -> {"id" or null, "value" or null}
    /inc                               session["count"] += 1        -> {"id", "count"}
    /append?value=V                    session.setdefault("list", []), then
                                       session["list"].append(V) in place (never set again)
                                                                    -> {"id", "list"}
    /invalidate                        invalidates the request's session if there is one
                                                                    -> {"invalidated", "id"}
    /peek?id=SID                       the LOCAL copy, untouched (manager._sessions.get):
                                       {"found", "attributes", "primary", "valid",
                                        "max_inactive_interval"}; no session looked up or created
    /roles                             BackupManager: {id: "primary"|"backup"|"proxy"} as this
                                       node's map sees them ({} for other managers); /peek
                                       has the id's "role" too
    /ids                               the local session ids (valid flag set, no expiry check)
    /info                              manager class and registered name, jvmRoute, pid

What this harness adds to pycat.testing's Node: ``start()`` returns at once (``wait_started``,
``wait_http`` wait), the log-based membership checks (``wait_member(other, since=mark)``,
``member_id_seen_by``), and the test app's views (``peek``, ``roles``, ``ids``, ``info``); its
``request(path, cookie)`` answers a harness ``Response``. Every node is stopped at teardown and
the plugin adds each node's log tail to a failed test's report.
"""
import http.client
import json
import os
import pathlib
import re
import sys
import urllib.parse

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "integration"))
from node_helpers import HELLO, SERVER_XML, wait_until  # noqa: E402
from pycat.testing import ASYNC, SYNC, Cluster as PluginCluster, Node as PluginNode  # noqa: E402
from pycat.testing.client import parse_set_cookie, request  # noqa: E402
from pycat.testing.cluster import VALVES  # noqa: E402

__all__ = ["ASYNC", "SYNC", "Cluster", "Node", "Response", "User", "build_cluster", "cluster_factory",
           "http_request", "install_app", "peek", "q", "wait_until"]

STARTUP_TIMEOUT = 40.0
MEMBER_TIMEOUT = 20.0
HTTP_TIMEOUT = 10.0
COOKIE = "JSESSIONID"

_ENGINE_OPEN = 'jvmRoute="${jvm.route:-node0}">'

REPLICATION_VALVE = '<Valve className="org.apache.catalina.ha.tcp.ReplicationValve" filter=""/>'
CLUSTER_LISTENER = '<ClusterListener className="org.apache.catalina.ha.session.ClusterSessionListener"/>'
BINDER_VALVE = '<Valve className="org.apache.catalina.ha.session.JvmRouteBinderValve"/>'

WEB_XML = """<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0">
  <distributable/>
  <servlet><servlet-name>repl</servlet-name><servlet-class>repl_app:application</servlet-class></servlet>
  <servlet-mapping><servlet-name>repl</servlet-name><url-pattern>/*</url-pattern></servlet-mapping>
{session_config}</web-app>
"""

REPL_APP = r'''"""The replication test app (tests/ha/cluster_harness.py documents its endpoints)."""
import json
import os
from urllib.parse import parse_qs


def _answer(start_response, obj, status="200 OK"):
    body = json.dumps(obj, default=repr).encode("utf-8")
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _manager(environ):
    return environ["pycat.request"].context.manager


def _roles(environ):
    """{id: primary|backup|proxy} from a BackupManager's map, {} for other managers."""
    roles = getattr(_manager(environ), "roles", None)
    return roles() if roles is not None else {}


def _set_interval(session, seconds):
    setter = getattr(session, "set_max_inactive_interval", None)
    if callable(setter):
        setter(seconds)
    else:
        session.max_inactive_interval = seconds


def application(environ, start_response):
    path = environ.get("PATH_INFO") or "/"
    args = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
    s = environ["pycat.session"]
    if path == "/set":
        s[args["name"]] = args.get("value", "")
        if "mii" in args:
            _set_interval(s.session(create=False), int(args["mii"]))
        return _answer(start_response, {"id": s.id})
    if path == "/get":
        return _answer(start_response, {"id": s.id, "value": s.get(args["name"])})
    if path == "/inc":
        s["count"] = s.get("count", 0) + 1
        return _answer(start_response, {"id": s.id, "count": s["count"]})
    if path == "/append":
        s.setdefault("list", [])
        s["list"].append(args.get("value", ""))
        return _answer(start_response, {"id": s.id, "list": list(s["list"])})
    if path == "/invalidate":
        sid = s.id
        return _answer(start_response, {"invalidated": s.invalidate(), "id": sid})
    if path == "/peek":
        session = _manager(environ)._sessions.get(args.get("id", ""))
        if session is None:
            return _answer(start_response, {"found": False, "attributes": None, "primary": None,
                                            "valid": None, "max_inactive_interval": None,
                                            "role": _roles(environ).get(args.get("id", ""))})
        return _answer(start_response, {
            "found": True,
            "attributes": dict(session.raw_attributes()),
            "primary": bool(getattr(session, "is_primary", True)),
            "role": _roles(environ).get(session.id),
            "valid": bool(session.valid),
            "max_inactive_interval": session.max_inactive_interval,
        })
    if path == "/roles":
        return _answer(start_response, _roles(environ))
    if path == "/ids":
        return _answer(start_response, sorted(x.id for x in _manager(environ).find_sessions() if x.valid))
    if path == "/info":
        manager = _manager(environ)
        context = environ["pycat.request"].context
        return _answer(start_response, {
            "manager_class": type(manager).__module__ + "." + type(manager).__qualname__,
            "manager_name": manager.__dict__.get("_cluster_manager_name") or manager.name,
            "context_name": context.name,
            "jvm_route": getattr(manager, "jvm_route", None),
            "pid": os.getpid(),
        })
    return _answer(start_response, {"error": "no such endpoint %s" % path}, "404 Not Found")
'''


# -- HTTP ---------------------------------------------------------------------------------------
class Response:
    """One HTTP answer: status, headers (a list of pairs), body; ``json`` decodes the body;
    ``cookie`` is the JSESSIONID value of a Set-Cookie (None when there was none, "" for a
    deletion) and ``cookie_path`` its Path."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self.cookie = None
        self.cookie_path = None
        for name, value in headers:
            cookie, attrs = parse_set_cookie(value) if name.lower() == "set-cookie" else (None, {})
            if cookie is not None and cookie[0] == COOKIE:
                self.cookie, self.cookie_path = cookie[1], attrs.get("path")

    @property
    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "Response(%d, cookie=%r, %r)" % (self.status, self.cookie, self.body[:300])


def http_request(port, path, cookie=None, timeout=HTTP_TIMEOUT):
    """GET path on 127.0.0.1:port with ``Cookie: JSESSIONID=cookie`` when given (one connection per
    request, so threads can share nothing). Raises OSError / http.client errors when nothing answers."""
    resp = request(port, "GET", path, headers={"Cookie": "%s=%s" % (COOKIE, cookie)} if cookie else None,
                   timeout=timeout)
    return Response(resp.status, resp.headers, resp.body)


class User:
    """A simulated browser: one JSESSIONID cookie. The first Set-Cookie is always taken; later
    ones (a JvmRouteBinderValve rewrite, a new session) only with ``follow`` (the default)."""

    def __init__(self, sid=None, follow=True, app="app"):
        self.sid = sid
        self.follow = follow
        self.app = app
        self.cookies_seen = []    # every JSESSIONID value a Set-Cookie carried, in order

    def request(self, node, path, timeout=HTTP_TIMEOUT):
        """The Response to GET /<app><path> on node with this user's cookie."""
        resp = http_request(node.http_port, "/%s%s" % (self.app, path), self.sid, timeout)
        if resp.cookie is not None:
            self.cookies_seen.append(resp.cookie)
            if self.sid is None or self.follow:
                self.sid = resp.cookie or None
        return resp

    def get(self, node, path, expect=200, timeout=HTTP_TIMEOUT):
        """request(), asserting the status (200 by default)."""
        resp = self.request(node, path, timeout)
        if expect is not None:
            assert resp.status == expect, "%s %s -> %r (expected %d)" % (node.name, path, resp, expect)
        return resp


def q(value):
    return urllib.parse.quote(str(value), safe="")


# -- nodes --------------------------------------------------------------------------------------
class Node(PluginNode):
    """One node of a harness cluster (module doc)."""

    def __repr__(self):
        return "Node(%s, http=%s, rx=%s, pid=%s)" % (self.name, self.http_port, self.rx_port, self.pid)

    @property
    def rx_port(self):
        return self.receiver_port

    @property
    def member_prefix(self):
        """How other nodes' logs name this one: ``Member(tcp://127.0.0.1:RXPORT,``."""
        return "Member(tcp://127.0.0.1:%d," % self.rx_port

    def start(self, wait=False, timeout=None):
        """Spawn ``python -m pycat run``; returns at once unless ``wait``."""
        return super().start(wait=wait, timeout=timeout)

    def wait_log(self, text, since=None, timeout=STARTUP_TIMEOUT, what=None):
        return super().wait_log(text, since, timeout, what)

    def wait_started(self, timeout=STARTUP_TIMEOUT):
        self.wait_log("Server startup in", timeout=timeout, what="%s to start" % self.name)

    def sees(self, other, since=None):
        """True once this node logged ``other`` joining (after ``since``, default its own start)."""
        since = self.start_mark if since is None else since
        return ("Replication member added:[%s" % other.member_prefix) in self.log(since)

    def wait_member(self, other, since=None, timeout=MEMBER_TIMEOUT):
        self.wait_log("Replication member added:[%s" % other.member_prefix, since=since, timeout=timeout,
                      what="%s to see %s join" % (self.name, other.name))

    def member_id_seen_by(self, other):
        """This node's member unique id (16 bytes) as ``other`` last logged it joining."""
        found = re.findall(r"Replication member added:\[Member\(tcp://127\.0\.0\.1:%d, id=([0-9a-f]{32})"
                           % self.rx_port, other.log())
        assert found, "%s never logged %s joining:\n%s" % (other.name, self.name, other.tail())
        return bytes.fromhex(found[-1])

    # -- HTTP -----------------------------------------------------------------------------------
    def request(self, path, cookie=None, timeout=HTTP_TIMEOUT):
        """GET ``path`` with ``cookie`` as JSESSIONID: the harness Response (not pycat.testing's)."""
        return http_request(self.http_port, path, cookie, timeout)

    def try_request(self, path, cookie=None, timeout=HTTP_TIMEOUT):
        """request(), or None while nothing answers (connection refused, reset, timeout)."""
        try:
            return self.request(path, cookie, timeout)
        except (OSError, http.client.HTTPException):
            return None

    def app_json(self, path, app="app"):
        resp = self.request("/%s%s" % (app, path))
        assert resp.status == 200, "%s /%s%s -> %r" % (self.name, app, path, resp)
        return resp.json

    def peek(self, sid, app="app"):
        """The node's LOCAL copy of session ``sid``, read without touching it:
        {"found", "attributes", "primary", "valid", "max_inactive_interval"}."""
        return self.app_json("/peek?id=%s" % q(sid), app)

    def wait_peek(self, sid, condition, timeout=5.0, what=None, app="app"):
        """Poll peek(sid) until ``condition(peek)`` is true and return that peek; on timeout the
        AssertionError shows the last one seen."""
        seen = [None]

        def check():
            seen[0] = self.peek(sid, app)
            return condition(seen[0])
        try:
            wait_until(check, timeout=timeout, interval=0.02)
        except AssertionError:
            raise AssertionError("timed out after %.1f s waiting for %s on %s; last peek of %s: %r"
                                 % (timeout, what or "a condition", self.name, sid, seen[0])) from None
        return seen[0]

    def wait_attributes(self, sid, expected, timeout=5.0, what=None, app="app"):
        """Wait until this node's copy of ``sid`` has exactly the attributes ``expected``."""
        return self.wait_peek(sid, lambda p: p["found"] and p["attributes"] == expected, timeout,
                              "%s = %r" % (what or "the attributes", expected), app)

    def roles(self, app="app"):
        return self.app_json("/roles", app)

    def ids(self, app="app"):
        return self.app_json("/ids", app)

    def info(self, app="app"):
        return self.app_json("/info", app)

    def wait_http(self, path="/app/ids", timeout=STARTUP_TIMEOUT):
        """Poll ``path`` until the FIRST 200 answer and return that Response."""
        def answer():
            resp = self.try_request(path, timeout=5.0)
            return resp if resp is not None and resp.status == 200 else None
        return self.wait_until(answer, timeout, "%s to answer %s" % (self.name, path), interval=0.02)


class Cluster(PluginCluster):
    """The nodes of one test; ``start``/``restart`` wait for startup and membership."""

    node_class = Node

    def wait_mesh(self, timeout=MEMBER_TIMEOUT):
        """Every running node sees every other running node (as they are now)."""
        return self.wait_members(timeout=timeout)

    def restart(self, node, wait_http=None, timeout=STARTUP_TIMEOUT):
        """Start ``node`` again (after kill/stop). With ``wait_http`` (a path), return the FIRST 200
        answer to it, polled from the moment the process starts; then wait for startup and for
        every running node to see the new incarnation."""
        assert not node.alive
        node.start()
        first = node.wait_http(wait_http, timeout) if wait_http else None
        node.wait_ready(timeout=timeout)
        self.wait_members(timeout=timeout)
        return first

    def cleanup(self):
        self.close()


def peek(node, sid, app="app"):
    """``node``'s local copy of session ``sid`` (Node.peek)."""
    return node.peek(sid, app)


def build_cluster(root, n=2, send_options=ASYNC, procs=None, channel_only=False, binder=True,
                  max_inactive_interval=None, session_timeout=None, apps=("app",), manager="delta"):
    """``n`` node bases under ``root`` (node1..nodeN), not started.

    ``send_options``: channelSendOptions (ASYNC 8, SYNC 6). ``channel_only``: the <Cluster> holds
    only its <Channel>. ``binder=False``: no JvmRouteBinderValve.
    ``max_inactive_interval`` (seconds): the <Manager> attribute, which wins over web.xml.
    ``session_timeout`` (minutes): web.xml <session-config> of the test apps. ``apps``: the names
    under webapps/ that get the test app. ``manager``: "delta" (DeltaManager) or "backup"
    (BackupManager, mapSendOptions 6). ``procs`` (a node_helpers.Procs) also closes the nodes."""
    attrs = {"processExpiresFrequency": "1"}
    if max_inactive_interval is not None:
        attrs["maxInactiveInterval"] = str(max_inactive_interval)
    xml = SERVER_XML.format(shutdown_port="${shutdown.port}")
    assert _ENGINE_OPEN in xml
    xml = xml.replace(_ENGINE_OPEN, _ENGINE_OPEN[:-1] + ' backgroundProcessorDelay="1">', 1)
    valves = VALVES if binder else "\n  ".join([REPLICATION_VALVE, CLUSTER_LISTENER])
    # channel_only: the <Cluster> holds its <Channel> and nothing else
    cluster = Cluster(root, n, None if channel_only else manager, send_options, manager_attrs=attrs, server_xml=xml,
                      valves="" if channel_only else valves)
    for node in cluster.nodes:
        write_root(node)
        for app in apps:
            install_app(node.base, app, session_timeout)
        if procs is not None:
            procs.add(node)
    return cluster


def write_root(node):
    """webapps/ROOT/index.html: "/" answers 200 with node_helpers.HELLO, as on a make_base node."""
    os.makedirs(os.path.join(node.app_base, "ROOT"), exist_ok=True)
    with open(os.path.join(node.app_base, "ROOT", "index.html"), "wb") as fh:
        fh.write(HELLO)


def install_app(base, name="app", session_timeout=None):
    """webapps/<name>: WEB-INF/web.xml (distributable, the callable on /*), WEB-INF/classes/repl_app.py."""
    classes = os.path.join(base, "webapps", name, "WEB-INF", "classes")
    os.makedirs(classes, exist_ok=True)
    config = ""
    if session_timeout is not None:
        config = "  <session-config><session-timeout>%d</session-timeout></session-config>\n" % session_timeout
    with open(os.path.join(base, "webapps", name, "WEB-INF", "web.xml"), "w") as fh:
        fh.write(WEB_XML.format(session_config=config))
    with open(os.path.join(classes, "repl_app.py"), "w") as fh:
        fh.write(REPL_APP)


@pytest.fixture
def cluster_factory(tmp_path):
    """``cluster_factory(n, send_options=..., **build_cluster options)`` -> a Cluster (not started);
    every node is stopped at teardown (the plugin reports the logs of a failed test's nodes)."""
    made = []

    def make(n=2, send_options=ASYNC, **options):
        cluster = build_cluster(tmp_path / ("cluster%d" % len(made)), n, send_options, **options)
        made.append(cluster)
        return cluster
    yield make
    for cluster in made:
        cluster.close()
