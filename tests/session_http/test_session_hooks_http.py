"""The attribute observer hears what apps read and write over HTTP, through the Flask and Django
adapters as through a servlet's session (the seam replication records a request's changes with)."""
import pytest

from apps import wsgi_app
from http_client import Browser
from pycat.session.session import AttributeObserver
from pycat_harness import Tree

pytestmark = pytest.mark.timeout(60)


class Heard(AttributeObserver):
    def __init__(self):
        self.reads = set()
        self.changes = []

    def attribute_read(self, session, name, value):
        self.reads.add(name)

    def attribute_written(self, session, name, value, old):
        self.changes.append(("written", name, value, old))

    def attribute_removed(self, session, name, old):
        self.changes.append(("removed", name, old))

    def take(self):
        taken = (self.reads, self.changes)
        self.reads, self.changes = set(), []
        return taken


def observed_tree(tmp_path, files):
    tree = Tree(tmp_path, {"/fw": {"files": files}}, start=False)
    tree.server.start()
    heard = tree.contexts["/fw"].manager.attribute_observer = Heard()
    return tree, heard


@pytest.fixture
def flask_tree(tmp_path):
    pytest.importorskip("flask")
    tree, heard = observed_tree(tmp_path, wsgi_app("session_flask", "app"))
    yield tree, heard
    tree.stop()


def test_flask_sample_reads_and_writes_are_heard(flask_tree):
    tree, heard = flask_tree
    b = Browser(tree.port)
    assert b.get("/fw/").text == "visits=1\n"
    # session.get() on no session reads nothing (and creates nothing); the answer reads it back
    assert heard.take() == ({"visits"}, [("written", "visits", 1, None)])
    assert b.get("/fw/").text == "visits=2\n"
    assert heard.take() == ({"visits"}, [("written", "visits", 2, 1)])
    assert b.get("/fw/peek").text == "visits=2\n"
    assert heard.take() == ({"visits"}, [])
    assert b.get("/fw/logout").text == "cleared\n"
    assert heard.take()[1] == [("removed", "visits", 2)]


@pytest.fixture
def django_tree(tmp_path):
    pytest.importorskip("django")
    tree, heard = observed_tree(tmp_path, wsgi_app("session_django", "application"))
    yield tree, heard
    tree.stop()


def test_django_sample_reads_and_writes_are_heard(django_tree):
    tree, heard = django_tree
    b = Browser(tree.port)
    assert b.get("/fw/").text == "visits=1\n"
    reads, changes = heard.take()
    assert changes == [("written", "visits", 1, None)]
    assert b.get("/fw/").text == "visits=2\n"
    reads, changes = heard.take()
    assert "visits" in reads and changes == [("written", "visits", 2, 1)]
    assert b.get("/fw/peek").text == "visits=2\n"
    reads, changes = heard.take()
    assert "visits" in reads and changes == []
    assert b.get("/fw/login?user=bob").text == "user=bob\n"
    reads, changes = heard.take()
    assert "user" in reads and changes == [("written", "user", "bob", None)]


READER_APP = '''from flask import Flask, session

from pycat.adapters.flask import PycatSessionInterface

app = Flask(__name__)
app.session_interface = PycatSessionInterface()


@app.route("/set")
def set_both():
    session["a"] = [1]
    session["b"] = "x"
    return "ok"


@app.route("/read/<how>")
def read(how):
    result = {
        "in": lambda: "a" in session,
        "iteration": lambda: sorted(session),
        "keys": lambda: sorted(session.keys()),
        "items": lambda: sorted(session.items()),
        "values": lambda: sorted(map(repr, session.values())),
        "dict": lambda: sorted(dict(session)),
        "get": lambda: session.get("a"),
        "getitem": lambda: session["b"],
        "len": lambda: len(session),
    }[how]()
    return repr(result)


@app.route("/pop")
def pop():
    return repr(session.pop("a"))
'''

READS = {"in": {"a"}, "iteration": {"a", "b"}, "keys": {"a", "b"}, "items": {"a", "b"}, "values": {"a", "b"},
         "dict": {"a", "b"}, "get": {"a"}, "getitem": {"b"}, "len": set()}


@pytest.fixture
def reader_tree(tmp_path):
    pytest.importorskip("flask")
    tree, heard = observed_tree(tmp_path, {**wsgi_app("session_flask", "app"),
                                           "WEB-INF/classes/session_flask.py": READER_APP})
    yield tree, heard
    tree.stop()


def test_every_read_path_of_the_adapter_is_heard(reader_tree):
    tree, heard = reader_tree
    b = Browser(tree.port)
    assert b.get("/fw/set").text == "ok"
    assert heard.take()[1] == [("written", "a", [1], None), ("written", "b", "x", None)]
    for how, expected in READS.items():
        reply = b.get("/fw/read/" + how)
        assert reply.status == 200, reply
        reads, changes = heard.take()
        assert reads == expected and changes == [], how
    assert b.get("/fw/pop").text == "[1]"
    assert heard.take() == ({"a"}, [("removed", "a", [1])])
