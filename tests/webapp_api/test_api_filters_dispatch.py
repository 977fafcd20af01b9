"""Filters, listeners, forward/include, error pages, welcome files, ServletContext — real HTTP."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from api_app_src import app_files  # noqa: E402
from pycat_harness import Tree, get, wait_for  # noqa: E402

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def tree(tmp_path):
    log_path = str(tmp_path / "events.log")
    t = Tree(tmp_path / "base", contexts={"/api": {"files": app_files(log_path)}})
    t.log_path = log_path
    yield t
    t.stop()


def _log(tree):
    with open(tree.log_path) as fh:
        return fh.read().splitlines()


def test_filter_order_url_patterns_then_servlet_names(tree):
    status, headers, body = get(tree.port, "/api/echo/x")
    assert status == 200
    # url-pattern mappings in document order (b before a), then the servlet-name one (n)
    assert b"trail=b,a,n" in body and b"dt=REQUEST" in body
    assert headers["x-filter-a"] == "REQUEST" and headers["x-filter-n"] == "REQUEST"
    assert "x-filter-f" not in headers       # FORWARD-only mapping


def test_filter_can_answer_without_calling_the_chain(tree):
    status, _, body = get(tree.port, "/api/echo/x?block=1")
    assert status == 403 and b"echo" not in body


def test_filter_wraps_a_wsgi_app_and_its_response(tree):
    status, headers, body = get(tree.port, "/api/wsgi/p/q")
    assert status == 200
    # the UpperFilter's ResponseWrapper transformed the WSGI body; "/*" filter a ran first
    assert body == b"WSGI SCRIPT=/API/WSGI PATH=/P/Q TRAIL=A QS="
    assert headers["x-filter-a"] == "REQUEST"


def test_forward_to_a_wsgi_app_with_a_query(tree):
    status, _, body = get(tree.port, "/api/forward?to=/wsgi/z%3Fq%3D7")
    # the WSGI app sees the forward's path and query; upper filter is REQUEST-only: not applied
    assert status == 200 and body == b"wsgi script=/api/wsgi path=/z trail=a qs=q=7"


def test_forward_clears_the_buffer_and_runs_forward_filters(tree):
    status, headers, body = get(tree.port, "/api/forward")
    assert status == 200
    assert body.startswith(b"echo sp=/echo pi=/fwd")
    assert b"BEFORE-FORWARD" not in body and b"AFTER-FORWARD" not in body
    assert b"dt=FORWARD" in body and b"x=1" in body
    # REQUEST filters ran for /forward (a), FORWARD filters for /echo/* (f), then servlet-name n
    # only if it lists FORWARD: it does not
    assert b"trail=a,f" in body
    assert headers["x-outer"] == "kept" and headers["x-filter-f"] == "FORWARD"
    assert body.endswith(b" from=/api/forward uri=/api/echo/fwd")
    # after the forward the caller sees its own request again: paths restored, forward attributes gone
    # (headers may still be set: the forward suspends the body, it does not commit)
    assert headers["x-after"] == "None /forward"


def test_named_dispatcher_forward(tree):
    status, _, body = get(tree.port, "/api/forward?to=name:echo")
    assert status == 200 and b"dt=FORWARD" in body and b"sp=/forward" in body


def test_include_keeps_outer_status_and_headers(tree):
    status, headers, body = get(tree.port, "/api/include")
    assert status == 200
    assert body == b"A|inner:INCLUDE:/inner|B"
    assert headers["x-outer"] == "kept" and "x-inner" not in headers


def test_error_page_by_exception_with_error_dispatch_filter(tree):
    status, headers, body = get(tree.port, "/api/boom")
    assert status == 500
    assert body == b"error-page status=500 exc=AppError dt=ERROR uri=/api/boom"
    assert headers["x-filter-e"] == "ERROR"


def test_error_page_by_status_code(tree):
    status, _, body = get(tree.port, "/api/nf")
    assert status == 404 and body == b"custom not found page"
    status, _, body = get(tree.port, "/api/no-such-file.txt")
    assert status == 404 and body == b"custom not found page"


def test_welcome_files_in_declared_order(tree):
    assert get(tree.port, "/api/")[2] == b"the index page"
    assert get(tree.port, "/api/sub/")[2] == b"sub welcome start"


def test_mime_mapping_from_web_xml(tree):
    status, headers, body = get(tree.port, "/api/file.pyc8")
    assert status == 200 and headers["content-type"].startswith("application/x-pycat-test")


def test_listeners_and_servlet_context(tree):
    assert _log(tree) == ["context_initialized"]
    status, _, body = get(tree.port, "/api/info")
    assert status == 200
    info = json.loads(body)
    assert info["started"] == "yes" and info["param"] is True and info["data"] == "resource data"
    assert info["missing"] is None and info["escape"] is None
    assert info["real"].endswith(os.path.join("api", "WEB-INF", "data.txt"))
    assert info["paths"] == ["/WEB-INF/classes/", "/WEB-INF/data.txt", "/WEB-INF/web.xml"]
    assert info["events"] == ["added events", "added started"]
    # request listener: initialized before the servlet, destroyed after it
    assert b"init=yes" in get(tree.port, "/api/echo/r")[2]
    wait_for(lambda: "request_destroyed /api/echo/r" in _log(tree))
    tree.stop()
    assert _log(tree)[-1] == "context_destroyed"


def test_a_listener_that_raises_fails_the_context(tmp_path):
    files = app_files(str(tmp_path / "x.log"))
    files["WEB-INF/classes/api_app.py"] += (
        "\nclass BadListener:\n    def context_initialized(self, event):\n        raise RuntimeError('no')\n")
    files["WEB-INF/web.xml"] = files["WEB-INF/web.xml"].replace("api_app:Listener", "api_app:BadListener")
    t = Tree(tmp_path / "base", contexts={"/bad": {"files": files}, "/ok": {"files": {"index.html": "ok"}}})
    try:
        assert not t.contexts["/bad"].state.available
        assert get(t.port, "/ok/")[2] == b"ok"          # the neighbour serves on
        assert get(t.port, "/bad/echo/x")[0] in (404, 503)
    finally:
        t.stop()
