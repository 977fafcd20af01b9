"""Flask and Django apps, unchanged views, keep their state in container sessions (over HTTP)."""
import pytest

from apps import wsgi_app
from http_client import Browser, cookie_attrs, request
from pycat_harness import Tree


@pytest.fixture
def tree(tmp_path, request):
    module, name = request.param
    t = Tree(tmp_path, {"/fw": {"files": wsgi_app(module, name)}}, start=False)
    t.engine.jvm_route = "n1"
    t.server.start()
    yield t
    t.stop()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("tree", [("session_flask", "app")], indirect=True, ids=["flask"])
def test_flask_session_is_the_container_session(tree):
    pytest.importorskip("flask")
    manager = tree.contexts["/fw"].manager
    b = Browser(tree.port)
    peek = b.get("/fw/peek")
    assert peek.status == 200 and peek.text == "visits=0\n"
    assert peek.set_cookies == [] and manager.active_sessions == 0   # reading creates nothing
    first = b.get("/fw/")
    assert first.text == "visits=1\n", first
    (header,) = first.set_cookies          # only the container's cookie, not Flask's "session"
    name, sid, attrs = cookie_attrs(header)
    assert name == "JSESSIONID" and sid.endswith(".n1") and attrs["path"] == "/fw"
    assert b.get("/fw/").text == "visits=2\n"
    assert b.get("/fw/peek").text == "visits=2\n"
    assert manager.find_session(sid)["visits"] == 2
    assert b.get("/fw/logout").text == "cleared\n"
    assert manager.find_session(sid) is not None and "visits" not in manager.find_session(sid)
    assert request(tree.port, "/fw/peek", cookie="JSESSIONID=" + sid).text == "visits=0\n"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("tree", [("session_django", "application")], indirect=True, ids=["django"])
def test_django_session_engine_is_the_container_session(tree):
    pytest.importorskip("django")
    manager = tree.contexts["/fw"].manager
    b = Browser(tree.port)
    peek = b.get("/fw/peek")
    assert peek.status == 200 and peek.text == "visits=0\n", peek
    assert peek.set_cookies == [] and manager.active_sessions == 0
    first = b.get("/fw/")
    assert first.text == "visits=1\n", first
    (header,) = first.set_cookies          # Django's "sessionid" cookie never appears
    name, sid, _ = cookie_attrs(header)
    assert name == "JSESSIONID" and sid.endswith(".n1")
    assert b.get("/fw/").text == "visits=2\n"
    assert manager.find_session(sid)["visits"] == 2
    # django's login path calls cycle_key(): the container changes the id, the data stays
    login = b.get("/fw/login?user=bob")
    assert login.text == "user=bob\n"
    (header,) = login.set_cookies
    new = cookie_attrs(header)[1]
    assert new != sid and manager.find_session(sid) is None
    assert b.get("/fw/peek").text == "visits=2\n"
    assert manager.find_session(new)["user"] == "bob"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("tree", [("session_flask", "app")], indirect=True, ids=["flask"])
def test_flask_answers_503_when_max_active_sessions_is_reached(tree):
    pytest.importorskip("flask")
    tree.contexts["/fw"].manager.max_active_sessions = 1
    b = Browser(tree.port)
    assert b.get("/fw/").text == "visits=1\n"
    refused = request(tree.port, "/fw/")
    assert refused.status == 503 and "maxActiveSessions (1) reached" in refused.text
    assert b.get("/fw/").text == "visits=2\n"
