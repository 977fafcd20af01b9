"""The adapters outside a pycat request: reads see an empty session, writes fail clearly."""
import pytest

from pycat.adapters.base import ContainerSessionView


def test_view_without_a_container_reads_empty_and_refuses_writes():
    view = ContainerSessionView(None)
    assert len(view) == 0 and "a" not in view and view.get("a") is None and view.session_id is None
    with pytest.raises(KeyError):
        view["a"]
    with pytest.raises(RuntimeError, match="not running inside pycat"):
        view["a"] = 1


def test_flask_outside_pycat_uses_the_null_session():
    flask = pytest.importorskip("flask")
    from pycat.adapters.flask import install
    app = install(flask.Flask("outside"))

    @app.route("/")
    def index():
        return "visits=%s" % flask.session.get("visits", 0)

    @app.route("/write")
    def write():
        flask.session["visits"] = 1
        return "written"

    client = app.test_client()
    assert client.get("/").data == b"visits=0"
    # Flask's NullSession: a clear error that no session is available (500 in Flask)
    assert client.get("/write").status_code == 500


def test_the_old_adapter_paths_are_the_same_modules():
    """README once documented pycat.session.adapters.*: configurations naming it keep working."""
    import importlib
    import pycat.adapters.base
    assert importlib.import_module("pycat.session.adapters.base") is pycat.adapters.base
    pytest.importorskip("flask")
    import pycat.adapters.flask
    assert importlib.import_module("pycat.session.adapters.flask") is pycat.adapters.flask
    pytest.importorskip("django")
    import pycat.adapters.django
    engine = importlib.import_module("pycat.session.adapters.django")   # SESSION_ENGINE's lookup
    assert engine is pycat.adapters.django and engine.SessionStore is pycat.adapters.django.SessionStore
