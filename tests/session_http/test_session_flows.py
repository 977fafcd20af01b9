"""Sessions over real HTTP against an in-process tree (Connector on 127.0.0.1, port 0):
cookies, jvmRoute, URL rewriting, expiry, invalidate, change_session_id, listeners, bad ids,
maxActiveSessions and non-serialisable attributes."""
import pytest

from apps import session_app
from http_client import Browser, cookie_attrs, request
from pycat_harness import Tree, wait_for
from pycat.session.manager import StandardManager


@pytest.fixture
def make_tree(tmp_path):
    trees = []

    def make(contexts=None, jvm_route=None, setup=None, **app_kw):
        tree = Tree(tmp_path, contexts or {"/app": {"files": session_app(**app_kw)}}, start=False)
        tree.engine.jvm_route = jvm_route
        if setup is not None:
            setup(tree)
        tree.server.start()
        trees.append(tree)
        return tree

    yield make
    for tree in trees:
        tree.stop()


def events(port, path="/app"):
    return request(port, path + "/session-events").text.splitlines()


@pytest.mark.timeout(30)
def test_cookie_set_once_with_path_httponly_and_jvm_route(make_tree):
    tree = make_tree(jvm_route="node1")
    b = Browser(tree.port)
    first = b.get("/app/session?op=get")
    assert first.status == 200 and first.text.strip() == "none" and first.set_cookies == []
    created = b.get("/app/session?op=inc")
    assert created.status == 200, created
    assert len(created.set_cookies) == 1
    name, value, attrs = cookie_attrs(created.set_cookies[0])
    assert name == "JSESSIONID" and value.endswith(".node1") and len(value) == 32 + len(".node1")
    assert attrs.get("path") == "/app" and attrs.get("httponly") is True
    assert "secure" not in attrs and "max-age" not in attrs
    assert created.fields() == {"id": value, "new": "True", "count": "1"}
    again = b.get("/app/session?op=inc")
    assert again.set_cookies == [] and again.fields() == {"id": value, "new": "False", "count": "2"}
    assert tree.contexts["/app"].manager.find_session(value)["count"] == 2


@pytest.mark.timeout(30)
def test_root_context_cookie_config_and_same_site(make_tree):
    def setup(tree):
        ctx = tree.contexts[""]
        ctx.use_http_only = False
        ctx.set_cookie_processor({"sameSiteCookies": "strict"})
    config = "<cookie-config><name>SID</name><max-age>600</max-age></cookie-config>"
    tree = make_tree({"": {"files": session_app(session_config=config)}}, setup=setup)
    b = Browser(tree.port)
    reply = b.get("/session?op=inc")
    (header,) = reply.set_cookies
    name, value, attrs = cookie_attrs(header)
    assert name == "SID" and attrs["path"] == "/" and attrs["max-age"] == "600" and "expires" in attrs
    assert attrs["samesite"] == "Strict" and "httponly" not in attrs
    assert b.get("/session?op=inc").fields()["count"] == "2"
    # a JSESSIONID cookie means nothing to this app
    assert request(tree.port, "/session?op=get", cookie="JSESSIONID=" + value).text.strip() == "none"


@pytest.mark.timeout(30)
def test_url_rewriting_when_cookies_are_disabled(make_tree):
    tree = make_tree(setup=lambda t: setattr(t.contexts["/app"], "cookies", False))
    link = request(tree.port, "/app/session?op=url")
    assert link.set_cookies == []
    url = link.text.strip()
    assert url.startswith("/app/session;jsessionid=") and url.endswith("?op=inc")
    sid = url.split("jsessionid=")[1].split("?")[0]
    first = request(tree.port, url)
    assert first.fields() == {"id": sid, "new": "False", "count": "1"} and first.set_cookies == []
    assert request(tree.port, url).fields()["count"] == "2"
    # cookies are not a tracking mode here: the id in a cookie is ignored
    assert request(tree.port, "/app/session?op=get", cookie="JSESSIONID=" + sid).text.strip() == "none"


@pytest.mark.timeout(30)
def test_encode_url_only_until_the_cookie_comes_back(make_tree):
    tree = make_tree()
    b = Browser(tree.port)
    fresh = b.get("/app/session?op=url")
    sid = b.jar["JSESSIONID"]
    # the browser has not shown it can do cookies yet: the URL carries the id too (Tomcat)
    assert fresh.text.strip() == "/app/session;jsessionid=%s?op=inc" % sid
    assert b.get("/app/session?op=url").text.strip() == "/app/session?op=inc"
    # the URL form is accepted in a cookie-enabled app too
    assert request(tree.port, "/app/session;jsessionid=%s?op=inc" % sid).fields()["count"] == "1"


@pytest.mark.timeout(30)
def test_expiry_by_the_background_ticker(make_tree):
    def setup(tree):
        tree.engine.background_processor_delay = 1
        manager = StandardManager()
        manager.process_expires_frequency = 1
        tree.contexts["/app"].set_manager(manager)
    tree = make_tree(setup=setup)
    b = Browser(tree.port)
    sid = b.get("/app/session?op=timeout&seconds=1").fields()["id"]
    manager = tree.contexts["/app"].manager
    # nobody touches the session: the Engine's ticker must expire it (listeners hear it)
    wait_for(lambda: "destroyed %s" % sid in events(tree.port), timeout=10, interval=0.1)
    assert sid not in {s.id for s in manager.find_sessions()}
    assert b.get("/app/session?op=get").text.strip() == "none"
    renewed = b.get("/app/session?op=inc")
    assert renewed.fields()["id"] != sid and renewed.fields()["count"] == "1" and len(renewed.set_cookies) == 1


@pytest.mark.timeout(30)
def test_invalidate_then_a_new_session(make_tree):
    tree = make_tree()
    b = Browser(tree.port)
    sid = b.get("/app/session?op=inc").fields()["id"]
    assert b.get("/app/session?op=invalidate").text.strip() == "invalidated"
    assert "destroyed %s" % sid in events(tree.port)
    assert b.get("/app/session?op=get").text.strip() == "none"
    again = b.get("/app/session?op=inc")
    assert again.fields()["id"] != sid and again.fields()["count"] == "1"


@pytest.mark.timeout(30)
def test_change_session_id_keeps_the_data_and_kills_the_old_id(make_tree):
    tree = make_tree(jvm_route="node1")
    b = Browser(tree.port)
    old = b.get("/app/session?op=inc").fields()["id"]
    changed = b.get("/app/session?op=change")
    new = changed.fields()["new"]
    assert changed.fields()["old"] == old and new != old and new.endswith(".node1")
    (header,) = changed.set_cookies
    assert cookie_attrs(header)[1] == new
    assert b.get("/app/session?op=inc").fields() == {"id": new, "new": "False", "count": "2"}
    # the old id (a fixation attacker's) leads nowhere
    assert request(tree.port, "/app/session?op=get", cookie="JSESSIONID=" + old).text.strip() == "none"


@pytest.mark.timeout(30)
def test_every_listener_kind_declared_in_web_xml(make_tree):
    tree = make_tree()
    b = Browser(tree.port)
    sid = b.get("/app/session?op=inc").fields()["id"]
    b.get("/app/session?op=inc")
    b.get("/app/session?op=remove&name=count")
    new = b.get("/app/session?op=change").fields()["new"]
    b.get("/app/session?op=invalidate")
    assert events(tree.port) == ["created %s" % sid, "added count %s" % sid, "replaced count %s" % sid,
                                 "removed count %s" % sid, "changed %s %s" % (sid, new), "destroyed %s" % new]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("cookie", [
    "JSESSIONID=../../../../etc/passwd",
    "JSESSIONID=" + "A" * 5000,
    "JSESSIONID=\"\"",
    "JSESSIONID=abc%00def",
    "JSESSIONID=DEADBEEFDEADBEEFDEADBEEFDEADBEEF",        # well-formed, unknown: forged
    "JSESSIONID=DEADBEEFDEADBEEFDEADBEEFDEADBEEF.node1",
    "JSESSIONID",
    "=;;;JSESSIONID==;",
])
def test_malformed_and_forged_ids_get_a_fresh_session(make_tree, cookie):
    tree = make_tree()
    reply = request(tree.port, "/app/session?op=inc", cookie=cookie)
    assert reply.status == 200, reply
    fields = reply.fields()
    assert fields["count"] == "1" and fields["new"] == "True"
    assert fields["id"] not in cookie and len(reply.set_cookies) == 1
    forged_url = request(tree.port, "/app/session;jsessionid=DEADBEEF?op=get")
    assert forged_url.status == 200 and forged_url.text.strip() == "none"


@pytest.mark.timeout(30)
def test_every_candidate_cookie_is_tried_in_order(make_tree):
    tree = make_tree()
    sid = request(tree.port, "/app/session?op=inc").fields()["id"]
    cookie = "JSESSIONID=DEADBEEF; other=1; JSESSIONID=%s" % sid
    reply = request(tree.port, "/app/session?op=inc", cookie=cookie)
    assert reply.fields() == {"id": sid, "new": "False", "count": "2"} and reply.set_cookies == []


@pytest.mark.timeout(30)
def test_max_active_sessions_refuses_with_503(make_tree):
    def setup(tree):
        manager = StandardManager()
        manager.max_active_sessions = 1
        tree.contexts["/app"].set_manager(manager)
    tree = make_tree(setup=setup)
    b = Browser(tree.port)
    assert b.get("/app/session?op=inc").status == 200
    refused = request(tree.port, "/app/session?op=inc")
    assert refused.status == 503 and "maxActiveSessions (1) reached" in refused.text
    assert refused.set_cookies == []
    assert b.get("/app/session?op=inc").fields()["count"] == "2"   # the existing user is fine


@pytest.mark.timeout(30)
def test_non_serialisable_attribute_in_a_distributable_app(make_tree):
    tree = make_tree(distributable=True)
    b = Browser(tree.port)
    reply = b.get("/app/session?op=unpicklable")
    assert reply.status == 500
    assert "session attribute &#x27;cursor&#x27;" in reply.text and "builtins.generator" in reply.text
    assert "cannot be serialised" in reply.text and "distributable" in reply.text
    assert b.get("/app/session?op=inc").fields()["count"] == "1"   # the session itself is fine


@pytest.mark.timeout(30)
def test_context_session_cookie_name_wins_over_cookie_config(make_tree):
    config = "<cookie-config><name>FROMWEBXML</name></cookie-config>"
    def setup(tree):
        tree.contexts["/app"].session_cookie_name = "MYSID"
        tree.contexts["/app"].same_site_cookies = "none"     # the Context attribute form
    tree = make_tree(setup=setup, session_config=config)
    b = Browser(tree.port)
    (header,) = b.get("/app/session?op=inc").set_cookies
    assert header.startswith("MYSID=") and header.endswith("; HttpOnly; SameSite=None")
    assert b.get("/app/session?op=inc").fields()["count"] == "2"
    url = b.get("/app/session?op=url").text.strip()
    assert url == "/app/session?op=inc"      # the id came in the MYSID cookie


@pytest.mark.timeout(30)
def test_a_listener_of_several_kinds_is_one_instance(make_tree, tmp_path):
    module = ("INSTANCES = []\n"
              "class Both:\n"
              "    def __init__(self):\n"
              "        INSTANCES.append(self)\n"
              "        self.events = []\n"
              "    def context_initialized(self, event):\n"
              "        self.events.append('context')\n"
              "    def session_created(self, event):\n"
              "        self.events.append('session')\n")
    files = session_app(listener=False)
    files["WEB-INF/classes/both_listener.py"] = module
    files["WEB-INF/web.xml"] = files["WEB-INF/web.xml"].replace(
        "<servlet>", "<listener><listener-class>both_listener:Both</listener-class></listener>\n  <servlet>", 1)
    tree = make_tree({"/app": {"files": files}})
    assert request(tree.port, "/app/session?op=inc").status == 200
    instances = tree.contexts["/app"].loader.import_module("both_listener").INSTANCES
    assert len(instances) == 1 and instances[0].events == ["context", "session"]


@pytest.mark.timeout(30)
def test_session_id_length_from_the_manager(make_tree):
    def setup(tree):
        manager = StandardManager()
        manager.session_id_length = 8            # <Manager sessionIdLength="8">: 8 random bytes, 16 hex
        tree.contexts["/app"].set_manager(manager)
    tree = make_tree(jvm_route="r7", setup=setup)
    sid = request(tree.port, "/app/session?op=inc").fields()["id"]
    body, _, route = sid.partition(".")
    assert len(body) == 16 and route == "r7"


@pytest.mark.timeout(30)
def test_context_reload_keeps_sessions_and_listeners_once(make_tree):
    tree = make_tree()
    b = Browser(tree.port)
    sid = b.get("/app/session?op=inc").fields()["id"]
    ctx = tree.contexts["/app"]
    ctx.stop()
    ctx.start()
    assert len(ctx.manager.listeners) == 1
    assert b.get("/app/session?op=inc").fields() == {"id": sid, "new": "False", "count": "2"}
