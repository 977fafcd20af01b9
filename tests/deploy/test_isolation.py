"""Per-app imports: WEB-INF/lib archives, lazy and dynamic imports, frameworks, nothing left behind."""
import io
import os
import sys
import zipfile

import pytest

from deploy_helpers import Node, write_folder, write_war
from pycat.webapp.loader import WebappLoader, canonical_module_name

LIB_WEB = """<web-app>
  <servlet><servlet-name>m</servlet-name><servlet-class>main:app</servlet-class></servlet>
  <servlet-mapping><servlet-name>m</servlet-name><url-pattern>/*</url-pattern></servlet-mapping>
</web-app>"""
LIB_MAIN = """import importlib
import libmod


def app(environ, start_response):
    # a dynamic import by name at request time, as frameworks do
    dyn = importlib.import_module("libmod.sub")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s %s" % (libmod.WHO, dyn.SUB)).encode()]
"""


def lib_zip(who):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("libmod/__init__.py", "WHO = %r\n" % who)
        zf.writestr("libmod/sub.py", "SUB = %r\n" % ("sub-" + who))
        zf.writestr("libmod-1.0.dist-info/METADATA", "Name: libmod\n")
    return buf.getvalue()


@pytest.mark.timeout(60)
def test_two_apps_with_the_same_wheel_names_and_a_replaced_wheel(tmp_path):
    node = Node(tmp_path)
    try:
        for name in ("x", "y"):
            write_folder(os.path.join(node.app_base, name), {
                "WEB-INF/web.xml": LIB_WEB, "WEB-INF/classes/main.py": LIB_MAIN,
                "WEB-INF/lib/libmod-1.0-py3-none-any.whl": lib_zip(name)})
        node.config.check()
        assert node.body("/x/") == (200, "x sub-x") and node.body("/y/") == (200, "y sub-y")
        assert "libmod" not in sys.modules and "main" not in sys.modules
        # the wheel is replaced in place (same path): after a reload the new one is read
        ctx = node.host.find_child("/x")
        whl = os.path.join(node.app_base, "x", "WEB-INF", "lib", "libmod-1.0-py3-none-any.whl")
        with open(whl, "wb") as fh:
            fh.write(lib_zip("x2"))
        node.config.reload(node.config.apps["/x"])
        assert node.host.find_child("/x") is ctx
        assert node.body("/x/") == (200, "x2 sub-x2") and node.body("/y/") == (200, "y sub-y")
    finally:
        node.stop()
    assert not [k for k in sys.modules if k.startswith("_pycat_webapp_")]


FLASK_APP = """from flask import Flask, render_template_string
import views_helper

app = Flask(__name__)


@app.route("/")
def index():
    return render_template_string("flask {{ who }}", who=views_helper.WHO)


@app.route("/item/<int:n>")
def item(n):
    return {"n": n, "root": app.root_path.endswith("classes")}
"""


@pytest.mark.timeout(60)
def test_flask_app_packaged_as_a_war(tmp_path):
    pytest.importorskip("flask")
    node = Node(tmp_path)
    try:
        write_war(os.path.join(node.app_base, "flask.war"), {
            "WEB-INF/web.xml": LIB_WEB.replace("main:app", "flaskapp:app"),
            "WEB-INF/classes/flaskapp.py": FLASK_APP,
            "WEB-INF/classes/views_helper.py": "WHO = 'inside'\n"})
        node.config.check(), node.config.check()
        assert node.body("/flask/") == (200, "flask inside")
        status, _, body = node.get("/flask/item/7")
        assert status == 200 and b'"n":7' in body.replace(b" ", b"") and b'"root":true' in body.replace(b" ", b"")
    finally:
        node.stop()


def test_loader_generations_and_canonical_names(tmp_path):
    write_folder(tmp_path / "app", {"WEB-INF/classes/mod.py": "X = 1\n"})
    one = WebappLoader(str(tmp_path / "app" / "WEB-INF"), name="app")
    one.start()
    two = WebappLoader(str(tmp_path / "app" / "WEB-INF"), name="app")
    two.start()
    try:
        assert one.prefix != two.prefix
        m1, m2 = one.load("mod:X"), two.import_module("mod")
        assert m1 == 1 and m2.__name__ == two.prefix + ".mod"
        old = one.prefix
        one.stop()
        assert canonical_module_name(old + ".mod") == two.prefix + ".mod"
        assert canonical_module_name("json") == "json"
        assert not [k for k in sys.modules if k.startswith(old + ".") or k == old]
    finally:
        one.stop()
        two.stop()


def test_plain_imports_outside_an_app_are_untouched(tmp_path):
    write_folder(tmp_path / "app", {"WEB-INF/classes/json.py": "SHADOW = True\n"})
    loader = WebappLoader(str(tmp_path / "app" / "WEB-INF"))
    loader.start()
    try:
        import json
        assert not hasattr(json, "SHADOW")                 # the server's json stays the stdlib's
        assert loader.load("json:SHADOW") is True          # the app's own json is the app's
        with loader.bound():
            import importlib
            assert importlib.import_module("json").SHADOW   # work done for the app sees its modules
    finally:
        loader.stop()


def test_sources_rewritten_in_place_are_never_read_from_stale_bytecode(tmp_path):
    write_folder(tmp_path / "app", {"WEB-INF/classes/pkg/__init__.py": "",
                                    "WEB-INF/classes/pkg/mod.py": "X = 1\n"})
    mod = tmp_path / "app" / "WEB-INF" / "classes" / "pkg" / "mod.py"
    st = os.stat(mod)
    for expected in (1, 2):
        if expected == 2:      # same size, same mtime: only the content differs
            mod.write_text("X = 2\n")
            os.utime(mod, ns=(st.st_atime_ns, st.st_mtime_ns))
        loader = WebappLoader(str(tmp_path / "app" / "WEB-INF"))
        try:
            assert loader.load("pkg.mod:X") == expected
        finally:
            loader.stop()
    assert not os.path.exists(tmp_path / "app" / "WEB-INF" / "classes" / "pkg" / "__pycache__")
