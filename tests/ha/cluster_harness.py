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

Each node is a CATALINA_BASE made by ``node_helpers.make_base`` whose server.xml Engine has
``jvmRoute="nodeN"`` (through catalina.properties), ``backgroundProcessorDelay="1"`` (expiry runs
every second) and the cluster how-to's <Cluster> on a multicast group and port unique to the test
(``waiting.unique_mcast_group``), a receiver on a fixed free TCP port (``autoBind="1"``: a
restarted node comes back on the same port). The <Manager> is the how-to's DeltaManager with
``processExpiresFrequency="1"`` (and ``maxInactiveInterval`` when asked). ``binder=False`` leaves
out the JvmRouteBinderValve <Valve> (the ReplicationValve stays, so the cluster adds no default
valve); ``channel_only=True`` writes a <Cluster> holding only its <Channel> (the cluster then
applies Tomcat's defaults itself).

``Cluster.start`` starts the nodes one after the other, each once the previous one logged its
startup (a starting node asks a running one for the sessions); ``together=True`` starts them at once.

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

Nodes run as subprocesses (``python -m pycat run``) with stdout and stderr appended to
``logs/out``; ``Node.log(since)`` reads it from a mark (``Node.mark()``), so a restarted node's
waits look only at what it wrote since. Everything a test starts is killed at teardown (by pid,
only ours), and the tail of each node's log is printed then (pytest shows it for a failed test).
"""
import http.client
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import urllib.parse

import pytest
from waiting import unique_mcast_group

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "integration"))
from node_helpers import SERVER_XML, Procs, free_port, make_base, node_env, pycat_cmd, wait_until  # noqa: E402

__all__ = ["ASYNC", "SYNC", "Cluster", "Node", "Response", "User", "build_cluster", "cluster_factory",
           "http_request", "install_app", "peek", "q", "wait_until"]

ASYNC = 8          # channelSendOptions="8": written to the peers' sockets, not awaited
SYNC = 6           # channelSendOptions="6": use_ack,sync: the response waits until every member applied
STARTUP_TIMEOUT = 40.0
MEMBER_TIMEOUT = 20.0
HTTP_TIMEOUT = 10.0
COOKIE = "JSESSIONID"

_ENGINE_OPEN = 'jvmRoute="${jvm.route:-node0}">'

CLUSTER_XML = """
      <Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster" channelSendOptions="{send_options}">
        {manager}
        <Channel className="org.apache.catalina.tribes.group.GroupChannel">
          <Membership className="org.apache.catalina.tribes.membership.McastService" address="{group}"
                      port="{mcast_port}" bind="127.0.0.1" frequency="500" dropTime="3000"/>
          <Receiver className="org.apache.catalina.tribes.transport.nio.NioReceiver" address="127.0.0.1"
                    port="{rx_port}" autoBind="1" selectorTimeout="5000" maxThreads="6"/>
          <Sender className="org.apache.catalina.tribes.transport.ReplicationTransmitter">
            <Transport className="org.apache.catalina.tribes.transport.nio.PooledParallelSender"/>
          </Sender>
          <Interceptor className="org.apache.catalina.tribes.group.interceptors.TcpFailureDetector"/>
          <Interceptor className="org.apache.catalina.tribes.group.interceptors.MessageDispatchInterceptor"/>
        </Channel>
        {valves}
      </Cluster>"""

MANAGER_XML = ('<Manager className="org.apache.catalina.ha.session.DeltaManager" expireSessionsOnShutdown="false" '
               'notifyListenersOnReplication="true" stateTransferTimeout="30" processExpiresFrequency="1"{extra}/>')
BACKUP_MANAGER_XML = ('<Manager className="org.apache.catalina.ha.session.BackupManager" expireSessionsOnShutdown="false" '
                      'notifyListenersOnReplication="true" mapSendOptions="6" processExpiresFrequency="1"{extra}/>')
REPLICATION_VALVE = '<Valve className="org.apache.catalina.ha.tcp.ReplicationValve" filter=""/>'
BINDER_VALVE = '<Valve className="org.apache.catalina.ha.session.JvmRouteBinderValve"/>'
CLUSTER_LISTENER = '<ClusterListener className="org.apache.catalina.ha.session.ClusterSessionListener"/>'

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
            if name.lower() != "set-cookie":
                continue
            parts = [p.strip() for p in value.split(";")]
            key, _, val = parts[0].partition("=")
            if key.strip() != COOKIE:
                continue
            val = val.strip().strip('"')
            attrs = {}
            for p in parts[1:]:
                k, _, v = p.partition("=")
                attrs[k.strip().lower()] = v.strip()
            if attrs.get("max-age") == "0":
                val = ""
            self.cookie, self.cookie_path = val, attrs.get("path")

    @property
    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "Response(%d, cookie=%r, %r)" % (self.status, self.cookie, self.body[:300])


def http_request(port, path, cookie=None, timeout=HTTP_TIMEOUT):
    """GET path on 127.0.0.1:port with ``Cookie: JSESSIONID=cookie`` when given (one connection per
    request, so threads can share nothing). Raises OSError / http.client errors when nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Connection": "close"}
        if cookie:
            headers["Cookie"] = "%s=%s" % (COOKIE, cookie)
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        return Response(resp.status, resp.getheaders(), body)
    finally:
        conn.close()


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
class Node:
    """One node's CATALINA_BASE and process."""

    def __init__(self, cluster, index, base, http_port, rx_port):
        self.cluster = cluster
        self.index = index
        self.name = "node%d" % index
        self.base = base
        self.http_port = http_port
        self.rx_port = rx_port
        self.out_path = os.path.join(base, "logs", "out")
        self.proc = None
        self.start_mark = 0
        self.starts = 0

    def __repr__(self):
        return "Node(%s, http=%d, rx=%d, pid=%s)" % (self.name, self.http_port, self.rx_port,
                                                       self.proc.pid if self.proc else None)

    @property
    def member_prefix(self):
        """How other nodes' logs name this one: ``Member(tcp://127.0.0.1:RXPORT,``."""
        return "Member(tcp://127.0.0.1:%d," % self.rx_port

    # -- log ------------------------------------------------------------------------------------
    def mark(self):
        """The current size of logs/out: pass it to log(since=) to read only what follows."""
        try:
            return os.path.getsize(self.out_path)
        except OSError:
            return 0

    def log(self, since=0):
        try:
            with open(self.out_path, "rb") as fh:
                fh.seek(since)
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, lines=80):
        return "\n".join(self.log().splitlines()[-lines:])

    # -- process --------------------------------------------------------------------------------
    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        """Spawn ``python -m pycat run`` (output appended to logs/out); returns at once."""
        assert not self.alive, "%s is already running" % self.name
        self.start_mark = self.mark()
        out = open(self.out_path, "ab")
        try:
            self.proc = self.cluster.procs.popen(pycat_cmd("run"), env=node_env(self.base), stdout=out,
                                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            out.close()
        self.starts += 1
        return self

    def _check_running(self, what):
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError("%s exited with %s while waiting for %s; its log:\n%s"
                                 % (self.name, self.proc.returncode, what, self.tail()))

    def wait_log(self, text, since=None, timeout=STARTUP_TIMEOUT, what=None):
        """Wait until ``text`` (a str, or a compiled regex) is in the log after ``since`` (default:
        this process's start); fails at once if the process exited."""
        since = self.start_mark if since is None else since
        what = what or "%s to log %r" % (self.name, getattr(text, "pattern", text))

        def seen():
            self._check_running(what)
            log = self.log(since)
            return text.search(log) if hasattr(text, "search") else text in log
        return wait_until(seen, timeout=timeout, message=what)

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

    def stop(self, timeout=30):
        """SIGTERM (a graceful stop: peers hear the goodbye) and wait for the exit."""
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)
        return self.proc.returncode if self.proc else None

    def kill(self):
        """SIGKILL (-9): no goodbye, nothing saved; peers notice through dropTime / the failure detector."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    # -- HTTP -----------------------------------------------------------------------------------
    def request(self, path, cookie=None, timeout=HTTP_TIMEOUT):
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
            self._check_running("%s to answer %s" % (self.name, path))
            resp = self.try_request(path, timeout=5.0)
            return resp if resp is not None and resp.status == 200 else None
        return wait_until(answer, timeout=timeout, interval=0.02, message="%s to answer %s" % (self.name, path))


class Cluster:
    """The nodes of one test; ``start``/``restart`` wait for startup and membership."""

    def __init__(self, procs, nodes=(), send_options=ASYNC):
        self.procs = procs
        self.nodes = list(nodes)
        self.send_options = send_options

    def __getitem__(self, i):
        return self.nodes[i]

    def start(self, nodes=None, members=True, together=False, timeout=STARTUP_TIMEOUT):
        """Start ``nodes`` (default: all), one after the other (each once the previous one logged
        its startup, as the how-to does: a starting node asks a running one for the sessions), or
        all at once with ``together``; with ``members``, wait until every running node has seen
        every other one join."""
        nodes = list(self.nodes if nodes is None else nodes)
        for node in nodes:
            node.start()
            if not together:
                node.wait_started(timeout)
        for node in nodes:
            node.wait_started(timeout)
        if members:
            self.wait_mesh(timeout=MEMBER_TIMEOUT)
        return nodes

    def running(self):
        return [n for n in self.nodes if n.alive]

    def wait_mesh(self, since=None, timeout=MEMBER_TIMEOUT):
        """Every running node has seen every other running node join (after ``since[node]``, a
        mark per node, default each node's start)."""
        since = since or {}
        nodes = self.running()
        for me in nodes:
            for other in nodes:
                if other is not me:
                    me.wait_member(other, since=since.get(me), timeout=timeout)

    def restart(self, node, wait_http=None, timeout=STARTUP_TIMEOUT):
        """Start ``node`` again (after kill/stop). With ``wait_http`` (a path), return the FIRST 200
        answer to it, polled from the moment the process starts; then wait for startup and for
        every running node to see the new incarnation."""
        assert not node.alive
        marks = {n: n.mark() for n in self.nodes if n.alive}
        node.start()
        first = node.wait_http(wait_http, timeout) if wait_http else None
        node.wait_started(timeout)
        for other, mark in marks.items():
            other.wait_member(node, since=mark)
            node.wait_member(other)
        return first

    def cleanup(self):
        self.procs.cleanup()
        for node in self.nodes:
            print("===== %s (%s) logs/out, last lines =====\n%s" % (node.name, node.base, node.tail(120)))


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
    (BackupManager, mapSendOptions 6)."""
    procs = procs or Procs()
    group, mcast_port = unique_mcast_group()
    cluster = Cluster(procs, send_options=send_options)
    for i in range(1, n + 1):
        rx_port, http_port = free_port(), free_port()
        if not channel_only:
            extra = ' maxInactiveInterval="%d"' % max_inactive_interval if max_inactive_interval is not None else ""
            manager_xml = (BACKUP_MANAGER_XML if manager == "backup" else MANAGER_XML).format(extra=extra)
            valves = "\n        ".join([REPLICATION_VALVE] + ([BINDER_VALVE] if binder else []) + [CLUSTER_LISTENER])
        else:
            manager_xml = valves = ""
        cluster_xml = CLUSTER_XML.format(send_options=send_options, manager=manager_xml, group=group,
                                         mcast_port=mcast_port, rx_port=rx_port, valves=valves)
        xml = SERVER_XML.format(shutdown_port=free_port())
        assert _ENGINE_OPEN in xml
        xml = xml.replace(_ENGINE_OPEN, _ENGINE_OPEN[:-1] + ' backgroundProcessorDelay="1">' + cluster_xml, 1)
        base = make_base(os.path.join(str(root), "node%d" % i), http_port, server_xml=xml,
                         properties="jvm.route=node%d\n" % i)
        for app in apps:
            install_app(base, app, session_timeout)
        cluster.nodes.append(Node(cluster, i, base, http_port, rx_port))
    return cluster


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
    every node is killed at teardown and its log tail printed."""
    made = []

    def make(n=2, send_options=ASYNC, **options):
        root = tmp_path / ("cluster%d" % len(made))
        cluster = build_cluster(root, n, send_options, procs=Procs(), **options)
        made.append(cluster)
        return cluster
    yield make
    for cluster in made:
        cluster.cleanup()
