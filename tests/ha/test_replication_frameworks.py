"""Flask and Django sessions replicated by DeltaManager: two real nodes, one distributable app whose
views use only the framework's session API (``flask.session`` through
``pycat.adapters.flask.PycatSessionInterface``, ``request.session`` through
``SESSION_ENGINE = "pycat.adapters.django"``).

The web app (``webapps/app`` on each node, ``<distributable/>``) maps two kinds of servlet:

    /*                   the framework app (fw_flask:application or fw_django:application)
    /peek, /ids, /info   the harness's debug callable (cluster_harness.REPL_APP), through
                         ``debug_app.py``, which gives it the PATH_INFO it dispatches on: an exact
                         mapping has an empty PATH_INFO; ``/peek?id=SID`` reads the node's LOCAL
                         copy of a session without touching it (same Context, same manager).

Framework views (JSON answers ``{"id", "user", "cart", "keys", "new"}``, read via the framework API):

    /login?user=U&items=a,b   session["user"] = U; session["cart"] = ["a", "b"]
    /add?item=X[&mark=0]      session["cart"].append(X) IN PLACE, then (unless mark=0) the
                              framework's own rule for in-place changes: ``session.modified = True``
                              (Flask and Django alike; pycat's adapters accept and ignore it: the
                              DeltaTracker digests every mutable value read and sends what changed)
    /show                     reads only
    /logout                   Flask: ``session.clear()`` (the container session stays, empty);
                              Django: ``django.contrib.auth.logout(request)`` (session.flush():
                              the container session is invalidated)

The story, for each case:

1. node1: login and an in-place append (marked modified, as the framework requires);
2. node2's local copy holds exactly the values (peek), and the framework API on node2 sees them;
   JvmRouteBinderValve moves the id to ``.node2`` and the user follows the new cookie;
3. node2: an in-place append WITHOUT ``modified = True`` (a rule broken); node1's copy still gets it;
4. node1: logout (the binder moves the id back to ``.node1`` first); node2's copy loses the values
   (Flask: found, no attributes; Django: gone), and the framework API on node2 sees nothing.

Async (channelSendOptions 8) waits for node2's copy with a timeout; sync (6) asserts at once after
the response, since the request ends only after every member applied the delta (delta_manager.py).
That holds only if the client cannot see the end of the response before the ReplicationValve ran: a
WSGI app returning an unsized iterable (every Flask/Werkzeug response; Django with a Content-Length,
e.g. CommonMiddleware) is flushed chunk by chunk by WsgiServlet.service (pycat/webapp/servlet.py),
so a response with a Content-Length is complete on the wire before the delta is even sent, and the
sync case can fail intermittently until that is fixed.
"""
import os

import pytest

from cluster_harness import ASYNC, REPL_APP, SYNC, User, cluster_factory, wait_until  # noqa: F401

APP = "app"

WEB_XML = """<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0">
  <distributable/>
  <servlet><servlet-name>fw</servlet-name><servlet-class>{module}:application</servlet-class>
    <load-on-startup>1</load-on-startup></servlet>
  <servlet><servlet-name>debug</servlet-name><servlet-class>debug_app:application</servlet-class></servlet>
  <servlet-mapping><servlet-name>fw</servlet-name><url-pattern>/*</url-pattern></servlet-mapping>
  <servlet-mapping><servlet-name>debug</servlet-name><url-pattern>/peek</url-pattern></servlet-mapping>
  <servlet-mapping><servlet-name>debug</servlet-name><url-pattern>/ids</url-pattern></servlet-mapping>
  <servlet-mapping><servlet-name>debug</servlet-name><url-pattern>/info</url-pattern></servlet-mapping>
</web-app>
"""

DEBUG_APP = '''"""The harness's debug endpoints on exact mappings: PATH_INFO from the servlet path."""
from repl_app import application as _repl


def application(environ, start_response):
    environ["PATH_INFO"] = "/" + environ.get("SCRIPT_NAME", "").rsplit("/", 1)[-1]
    return _repl(environ, start_response)
'''

FLASK_APP = '''"""A Flask app whose flask.session is the container session."""
from flask import Flask, jsonify, request, session

from pycat.adapters.flask import PycatSessionInterface

app = Flask(__name__)
app.session_interface = PycatSessionInterface()
application = app


def _state():
    return jsonify({"id": session.session_id, "user": session.get("user"), "cart": session.get("cart"),
                    "keys": sorted(session.keys()), "new": session.new})


@app.route("/login")
def login():
    session["user"] = request.args["user"]
    session["cart"] = request.args.get("items", "").split(",")
    return _state()


@app.route("/add")
def add():
    session["cart"].append(request.args["item"])
    if request.args.get("mark", "1") == "1":
        session.modified = True          # Flask's rule for a change in place
    return _state()


@app.route("/show")
def show():
    return _state()


@app.route("/logout")
def logout():
    session.clear()
    return _state()
'''

DJANGO_APP = '''"""A Django app whose request.session is the container session."""
import django
from django.conf import settings
from django.http import JsonResponse
from django.urls import path


def _state(request):
    s = request.session
    return JsonResponse({"id": s.session_key, "user": s.get("user"), "cart": s.get("cart"),
                         "keys": sorted(s.keys()), "new": None})


def login(request):
    request.session["user"] = request.GET["user"]
    request.session["cart"] = request.GET.get("items", "").split(",")
    return _state(request)


def add(request):
    request.session["cart"].append(request.GET["item"])
    if request.GET.get("mark", "1") == "1":
        request.session.modified = True          # Django's rule for a change in place
    return _state(request)


def show(request):
    return _state(request)


def logout(request):
    from django.contrib.auth import logout as auth_logout
    auth_logout(request)                         # request.session.flush()
    return _state(request)


class urls:
    urlpatterns = [path("login", login), path("add", add), path("show", show), path("logout", logout)]


if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="pycat-test-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=urls,
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        SESSION_ENGINE="pycat.adapters.django",
        USE_TZ=True,
    )
    django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402 - needs the settings above


class _Handler(WSGIHandler):
    def get_response(self, request):
        request.urlconf = urls
        return super().get_response(request)


application = _Handler()
'''

SOURCES = {"flask": ("fw_flask", FLASK_APP), "django": ("fw_django", DJANGO_APP)}


def install_framework_app(base, framework, name=APP):
    """webapps/<name> on the node base: the framework app on /*, the debug callable on /peek, /ids, /info."""
    module, source = SOURCES[framework]
    classes = os.path.join(base, "webapps", name, "WEB-INF", "classes")
    os.makedirs(classes, exist_ok=True)
    files = {os.path.join(base, "webapps", name, "WEB-INF", "web.xml"): WEB_XML.format(module=module),
             os.path.join(classes, module + ".py"): source,
             os.path.join(classes, "debug_app.py"): DEBUG_APP,
             os.path.join(classes, "repl_app.py"): REPL_APP}
    for path, text in files.items():
        with open(path, "w") as fh:
            fh.write(text)


def _check(node, sid, expected, mode, what):
    """node's local copy of ``sid`` has exactly the attributes ``expected``: at once in sync mode
    (the response came after every member applied the delta), within a timeout in async mode."""
    if mode == SYNC:
        seen = node.peek(sid)
        assert seen["found"] and seen["attributes"] == expected, (
            "%s on %s right after a sync response: %r (was the response complete on the wire before the "
            "ReplicationValve sent the delta? see the module doc)" % (what, node.name, seen))
        return seen
    return node.wait_attributes(sid, expected, timeout=5.0, what=what)


CASES = [("flask", ASYNC), ("flask", SYNC), ("django", ASYNC)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("framework,mode", CASES, ids=["flask-async8", "flask-sync6", "django-async8"])
def test_framework_session_replicates(cluster_factory, framework, mode):
    pytest.importorskip(framework)
    cluster = cluster_factory(2, send_options=mode, apps=())
    a, b = cluster.nodes
    for node in cluster.nodes:
        install_framework_app(node.base, framework)
    cluster.start()
    assert a.info()["manager_class"].endswith("DeltaManager")

    # 1. node1: the framework writes values, then changes one in place (marked modified)
    user = User(app=APP)
    login = user.get(a, "/login?user=alice&items=book,pen")
    sid = user.sid
    assert sid and sid.endswith(".node1"), login
    assert login.json["id"] == sid and login.json["cart"] == ["book", "pen"]
    if framework == "flask":
        assert login.json["new"] is True
    add = user.get(a, "/add?item=mug").json
    assert add["cart"] == ["book", "pen", "mug"] and add["id"] == sid
    expected = {"user": "alice", "cart": ["book", "pen", "mug"]}
    assert a.peek(sid)["attributes"] == expected      # the container session IS the framework's

    # 2. node2's local copy holds the values; node2 serves the session through the framework API
    _check(b, sid, expected, mode, "node2's copy after login + append on node1")
    hex_id = sid.rsplit(".", 1)[0]
    shown = user.get(b, "/show")
    assert shown.cookie == hex_id + ".node2", "JvmRouteBinderValve did not move the id: %r %r" % (
        shown, shown.headers)
    sid2 = user.sid
    assert shown.json == {"id": sid2, "user": "alice", "cart": ["book", "pen", "mug"],
                          "keys": ["cart", "user"], "new": False if framework == "flask" else None}
    assert b.peek(sid)["found"] is False

    # 3. node2: a change in place WITHOUT modified = True still reaches node1
    more = user.get(b, "/add?item=lamp&mark=0").json
    assert more["cart"] == ["book", "pen", "mug", "lamp"] and more["id"] == sid2
    expected = {"user": "alice", "cart": ["book", "pen", "mug", "lamp"]}
    assert b.peek(sid2)["attributes"] == expected
    _check(a, sid2, expected, mode, "node1's copy after the unmarked append on node2 (and the id move)")
    assert a.peek(sid)["found"] is False

    # 4. node1: logout; node2's copy no longer has the values
    assert b.peek(sid2)["attributes"] == expected       # positive control
    out = user.get(a, "/logout")
    assert out.json["user"] is None and out.json["cart"] is None and out.json["keys"] == []
    ids = [hex_id + ".node1", hex_id + ".node2"]
    if framework == "flask":
        # session.clear() removes every attribute; the (empty) container session lives on
        assert user.sid == hex_id + ".node1" and out.json["id"] == user.sid, out
        assert a.peek(user.sid)["attributes"] == {}
        _check(b, user.sid, {}, mode, "node2's copy emptied by session.clear() on node1")
        assert b.peek(sid2)["found"] is False
    else:
        # logout() -> flush() -> the container session is invalidated
        assert out.json["id"] is None, out
        if mode == SYNC:
            assert not any(b.peek(x)["found"] for x in ids), [b.peek(x) for x in ids]
        else:
            wait_until(lambda: not any(b.peek(x)["found"] for x in ids), timeout=5.0, interval=0.02,
                       message="the session to disappear from node2 after logout on node1")
        assert not any(a.peek(x)["found"] for x in ids)
        assert not [x for x in a.ids() + b.ids() if x.startswith(hex_id)]
    after = user.get(b, "/show").json
    assert after["user"] is None and after["cart"] is None and after["keys"] == [], after
