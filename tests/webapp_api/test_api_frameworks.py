"""The sample Flask and Django apps (samples/flask-demo, shipped as webapps/flask-demo.war, and webapps/django-demo) served under /flask and
/django with their own routing, as WSGI servlets over real HTTP.

Django's settings are process-wide and other tests (the examples app) configure Django too, so
the Django check runs in a fresh interpreter.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from pycat_harness import REPO, Tree, get

pytestmark = pytest.mark.timeout(60)


def app_folder_files(name):
    root = os.path.join(REPO, "samples" if name == "flask-demo" else "webapps", name)
    files = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for n in names:
            full = os.path.join(folder, n)
            with open(full, "rb") as fh:
                files[os.path.relpath(full, root)] = fh.read()
    return files


def test_flask_demo_under_flask(tmp_path):
    pytest.importorskip("flask", reason="flask is not installed (pip install -e .[test])")
    t = Tree(tmp_path, contexts={"/flask": {"files": app_folder_files("flask-demo")},
                                 "/other": {"files": {"index.html": "neighbour"}}})
    try:
        status, headers, body = get(t.port, "/flask/")
        assert status == 200 and b"<h1>Flask demo</h1>" in body
        assert b'href="/flask/notes/1"' in body                 # url_for knows the context path
        status, _, body = get(t.port, "/flask/notes/1")
        assert status == 200
        assert json.loads(body) == {"id": 1, "text": "routing below the context path is Flask's own",
                                    "url": "/flask/notes/1"}
        assert get(t.port, "/flask/notes/9")[0] == 404           # Flask's own 404
        assert get(t.port, "/flask/nowhere")[0] == 404
        status, _, body = get(t.port, "/flask/echo", method="POST", body=b"a=1&b=two",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200
        assert json.loads(body) == {"form": {"a": "1", "b": "two"}, "script_root": "/flask", "path": "/echo"}
        assert get(t.port, "/other/")[2] == b"neighbour"
    finally:
        t.stop()


DJANGO_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, %(core)r)
    sys.path.insert(0, %(here)r)
    import gevent.monkey
    from pycat_harness import Tree, get
    from test_api_frameworks import app_folder_files
    t = Tree(%(base)r, contexts={"/django": {"files": app_folder_files("django-demo")},
                                 "/flask": {"files": app_folder_files("flask-demo")}})
    out = {}
    try:
        for path in ("/django/", "/django/items/2", "/django/items/9", "/django/home", "/django/nope",
                     "/flask/notes/0", "/django/visits"):
            status, headers, body = get(t.port, path)
            out[path] = [status, headers.get("location"), body.decode("utf-8", "replace")]
        cookie = headers["set-cookie"].split(";")[0]
        out["again"] = get(t.port, "/django/visits", headers={"Cookie": cookie})[2].decode()
    finally:
        t.stop()
    print(json.dumps(out))
""")


def test_django_demo_under_django(tmp_path):
    pytest.importorskip("django", reason="django is not installed (pip install -e .[test])")
    pytest.importorskip("flask", reason="flask is not installed (pip install -e .[test])")
    here = os.path.dirname(os.path.abspath(__file__))
    script = DJANGO_SCRIPT % {"core": os.path.join(REPO, "tests", "core"), "here": here, "base": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    status, _, body = out["/django/"]
    assert status == 200 and "<h1>Django demo</h1>" in body and 'href="/django/items/3"' in body
    status, _, body = out["/django/items/2"]
    assert status == 200 and json.loads(body) == {"id": 2, "text": "served inside pycat", "url": "/django/items/2",
                                                  "script_name": "/django", "path": "/django/items/2"}
    assert out["/django/items/9"][0] == 404 and out["/django/nope"][0] == 404
    assert out["/django/home"][:2] == [302, "/django/"]
    # request.session is the container session (JSESSIONID)
    assert json.loads(out["/django/visits"][2]) == {"visits": 1} and json.loads(out["again"]) == {"visits": 2}
    # a Flask app next to it in the same process keeps its own routing
    assert out["/flask/notes/0"][0] == 200 and "Flask runs unmodified" in out["/flask/notes/0"][2]


def test_shipped_flask_war_matches_its_sources():
    """webapps/flask-demo.war is built from samples/flask-demo by `pycat war`: keep the two in step."""
    import zipfile
    with zipfile.ZipFile(os.path.join(REPO, "webapps", "flask-demo.war")) as war:
        shipped = {name: war.read(name) for name in war.namelist() if not name.endswith("/")}
    sources = {name.replace(os.sep, "/"): data for name, data in app_folder_files("flask-demo").items()
               if not name.endswith((".pyc",))}
    assert shipped == sources, "rebuild it: pycat war samples/flask-demo -o webapps/flask-demo.war"
