"""``environ["pycat.session"]`` is the container session as a lazy dict (issue 9 item 5): reading it
creates nothing, writing creates the session (and its Set-Cookie). A real `pycat run` node serves a
bare WSGI app doing the Beaker-style one-liner; an in-process tree checks the rest of the accessor."""
import os
import subprocess

import pytest

from http_client import Browser, cookie_attrs, request
from node_helpers import free_port, http_get, make_base, node_env, pycat_cmd, read, wait_until
from pycat_harness import Tree

# a bare WSGI callable, no framework: /count writes, /peek only reads, /op?... the rest of the API
APP = '''
def application(environ, start_response):
    s = environ["pycat.session"]
    path = environ.get("PATH_INFO")
    query = environ.get("QUERY_STRING", "")
    if path == "/count":
        environ["pycat.session"]["count"] = environ["pycat.session"].get("count", 0) + 1
        out = "count=%d" % environ["pycat.session"]["count"]
    elif path == "/peek":
        try:
            item = s["count"]
        except KeyError:
            item = "KeyError"
        out = "get=%s item=%s in=%s len=%d keys=%s items=%s values=%s bool=%s exists=%s id=%s" % (
            s.get("count"), item, "count" in s, len(s), ",".join(s), ",".join("%s:%s" % kv for kv in s.items()),
            ",".join(map(str, s.values())), bool(s), s.exists, s.id)
    elif path == "/del":
        try:
            del s["count"]
            out = "deleted"
        except KeyError:
            out = "KeyError"
        out += " pop=%s clear=%s" % (s.pop("count", "dflt"), s.clear())
    elif path == "/setdefault":
        out = "setdefault=%s" % s.setdefault(query or "x", 7)
    elif path == "/update":
        s.update(dict(p.split("=", 1) for p in query.split("&") if p))
        out = "len=%d" % len(s)
    elif path == "/invalidate":
        out = "invalidated=%s" % s.invalidate()
    elif path == "/change":
        old = s.id
        out = "changed=%s" % (s.change_id() != old)
    elif path == "/session":
        out = "session=%s" % (s.session() is not None)
    else:
        out = "path=%s" % path
    data = (out + "\\n").encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
'''

WEB_XML = ('<?xml version="1.0" encoding="UTF-8"?>\n<web-app>\n'
           '  <servlet><servlet-name>app</servlet-name><servlet-class>counter_app:application</servlet-class></servlet>\n'
           '  <servlet-mapping><servlet-name>app</servlet-name><url-pattern>/*</url-pattern></servlet-mapping>\n'
           '</web-app>\n')
FILES = {"WEB-INF/web.xml": WEB_XML, "WEB-INF/classes/counter_app.py": APP}

SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="${http.port}" address="127.0.0.1" protocol="HTTP/1.1"/>
    <Engine name="Catalina" defaultHost="localhost" jvmRoute="w1">
      <Host name="localhost" appBase="webapps" autoDeploy="false">
        <Context path="/app" docBase="app"/>
      </Host>
    </Engine>
  </Service>
</Server>
"""


@pytest.mark.timeout(120)
def test_wsgi_one_liner_counter_on_a_real_node(tmp_path, procs):
    port = free_port()
    base = make_base(tmp_path / "node", port, server_xml=SERVER_XML)
    for rel, content in FILES.items():
        full = os.path.join(base, "webapps", "app", rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as fh:
            fh.write(content)
    out = open(os.path.join(base, "logs", "run.out"), "ab")
    proc = procs.popen(pycat_cmd("run"), env=node_env(base), stdout=out, stderr=subprocess.STDOUT)
    out.close()
    wait_until(lambda: proc.poll() is not None or http_get(port, "/app/ping"), timeout=30,
               message="node on port %d" % port)
    assert proc.poll() is None, read(os.path.join(base, "logs", "run.out"))

    # reading creates nothing: no Set-Cookie, the session reads as empty
    peek = request(port, "/app/peek")
    assert peek.status == 200, (peek, read(os.path.join(base, "logs", "run.out")))
    assert peek.text == ("get=None item=KeyError in=False len=0 keys= items= values= bool=False "
                         "exists=False id=None\n")
    assert peek.set_cookies == []
    # positive control: the write creates the session, with its cookie
    first = request(port, "/app/count")
    assert first.status == 200 and first.text == "count=1\n", first
    (header,) = first.set_cookies
    name, sid, attrs = cookie_attrs(header)
    assert name == "JSESSIONID" and sid.endswith(".w1") and attrs["path"] == "/app"
    second = request(port, "/app/count", cookie="JSESSIONID=" + sid)
    assert second.text == "count=2\n" and second.set_cookies == []
    again = request(port, "/app/peek", cookie="JSESSIONID=" + sid)
    assert again.text == ("get=2 item=2 in=True len=1 keys=count items=count:2 values=2 bool=True "
                          "exists=True id=%s\n" % sid)
    assert again.set_cookies == []


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path, {"/app": {"files": FILES}}, start=False)
    t.server.start()
    yield t
    t.stop()


@pytest.mark.timeout(60)
def test_deletes_and_pops_without_a_session_create_nothing(tree):
    manager = tree.contexts["/app"].manager
    for path in ("/app/del", "/app/peek", "/app/session", "/app/invalidate", "/app/update"):
        reply = request(tree.port, path)
        assert reply.status == 200 and reply.set_cookies == [], reply
    assert request(tree.port, "/app/del").text == "KeyError pop=dflt clear=None\n"
    assert request(tree.port, "/app/invalidate").text == "invalidated=False\n"
    assert request(tree.port, "/app/change").status == 500      # change_id needs a session
    assert manager.active_sessions == 0


@pytest.mark.timeout(60)
def test_writes_create_the_session_and_the_explicit_methods(tree):
    manager = tree.contexts["/app"].manager
    b = Browser(tree.port)
    first = b.get("/app/setdefault?a")
    assert first.text == "setdefault=7\n" and len(first.set_cookies) == 1   # setdefault of a missing key writes
    sid = cookie_attrs(first.set_cookies[0])[1]
    assert manager.find_session(sid)["a"] == 7
    assert b.get("/app/setdefault?a").text == "setdefault=7\n"
    assert b.get("/app/update?b=2&c=3").text == "len=3\n"
    assert sorted(manager.find_session(sid)) == ["a", "b", "c"]
    assert b.get("/app/session").text == "session=True\n"
    assert b.get("/app/del").text == "KeyError pop=dflt clear=None\n"
    assert len(manager.find_session(sid)) == 0 and manager.find_session(sid) is not None
    changed = b.get("/app/change")
    assert changed.text == "changed=True\n" and len(changed.set_cookies) == 1
    new_sid = b.jar["JSESSIONID"]
    assert new_sid != sid and manager.find_session(new_sid) is not None
    assert b.get("/app/invalidate").text == "invalidated=True\n"
    assert manager.find_session(new_sid) is None
    # a fresh write after the invalidation makes a new session (new cookie)
    again = b.get("/app/count")
    assert again.text == "count=1\n" and len(again.set_cookies) == 1


def test_accessor_is_a_mutable_mapping_with_non_clashing_names():
    import collections.abc

    from pycat.core.session_accessor import SessionAccessor
    assert issubclass(SessionAccessor, collections.abc.MutableMapping)
    for name in ("session", "create", "exists", "id", "invalidate", "change_id"):
        assert not hasattr(dict, name), name
        assert hasattr(SessionAccessor, name), name
