"""App code that raises SystemExit / KeyboardInterrupt (or any BaseException that is not an
Exception) is one failing app, never the end of the node: at deploy time it is a failed deploy,
during a request a 500. Real ``pycat run`` nodes, real HTTP, real ``pycat deploy``."""
import os
import sys
import zipfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy"))
from real_node import real_node  # noqa: E402,F401 (a fixture)

WEB_XML = """<web-app>
  %(extra)s
  <servlet><servlet-name>main</servlet-name><servlet-class>%(cls)s</servlet-class></servlet>
  <servlet-mapping><servlet-name>main</servlet-name><url-pattern>/hello</url-pattern></servlet-mapping>
</web-app>
"""

GOOD = """from pycat.webapp.servlet import HttpServlet


class Hello(HttpServlet):
    def do_get(self, request, response):
        response.set_header("Content-Type", "text/plain")
        response.write("good %s" % %(version)r)
"""


def good_app(version):
    return {"WEB-INF/web.xml": WEB_XML % {"cls": "good:Hello", "extra": ""},
            "WEB-INF/classes/good.py": GOOD.replace("%(version)r", repr(version))}


def exit_at_import_app():
    """The servlet's module ends the process at import (the reported case)."""
    return {"WEB-INF/web.xml": WEB_XML % {"cls": "boom:Hello", "extra": ""},
            "WEB-INF/classes/boom.py": "import sys\nsys.exit(3)\n"}


def listener_app(body):
    """A web.xml <listener> whose context_initialized runs ``body``."""
    return {"WEB-INF/web.xml": WEB_XML % {"cls": "good:Hello",
                                          "extra": "<listener><listener-class>lst:L</listener-class></listener>"},
            "WEB-INF/classes/good.py": GOOD.replace("%(version)r", "'listener'"),
            "WEB-INF/classes/lst.py": "import sys, gevent\n\n\nclass L:\n"
                                      "    def context_initialized(self, event):\n        %s\n" % body}


def filter_init_app():
    extra = ("<filter><filter-name>f</filter-name><filter-class>flt:F</filter-class></filter>"
             "<filter-mapping><filter-name>f</filter-name><url-pattern>/*</url-pattern></filter-mapping>")
    return {"WEB-INF/web.xml": WEB_XML % {"cls": "good:Hello", "extra": extra},
            "WEB-INF/classes/good.py": GOOD.replace("%(version)r", "'filter'"),
            "WEB-INF/classes/flt.py": "from pycat.webapp.filters import Filter\n\n\nclass F(Filter):\n"
                                      "    def init(self, config):\n        raise SystemExit('filter init')\n"}


def base_exception_at_import_app():
    return {"WEB-INF/web.xml": WEB_XML % {"cls": "odd:Hello", "extra": ""},
            "WEB-INF/classes/odd.py": "class Odd(BaseException):\n    pass\n\n\nraise Odd('not an Exception')\n"}


def write_folder(folder, files):
    for rel, content in files.items():
        full = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as fh:
            fh.write(content)
    return folder


def write_war(path, files):
    with zipfile.ZipFile(path, "w") as zf:
        for rel, content in files.items():
            zf.writestr(rel, content)
    return path


@pytest.fixture
def node(real_node):
    return real_node()


@pytest.mark.timeout(120)
def test_sys_exit_at_import_is_a_failed_deploy_first_and_on_redeploy(node, tmp_path):
    node.start()
    bad = write_war(str(tmp_path / "bad.war"), exit_at_import_app())
    # first deploy of an app whose module calls sys.exit(3) at import
    result = node.cli("deploy", bad, "--name", "fresh")
    assert result.returncode != 0 and "failed" in result.stderr, result.stdout + result.stderr
    assert node.alive, node.log()
    assert node.status("/fresh/hello") == 404
    assert not os.path.exists(os.path.join(node.webapps, "fresh")), os.listdir(node.webapps)
    # positive control: the same channel deploys a good app, which serves
    result = node.cli("deploy", write_war(str(tmp_path / "v1.war"), good_app("v1")), "--name", "app")
    assert result.returncode == 0, result.stdout + result.stderr
    assert node.get("/app/hello").text == "good v1"
    # redeploy of that app with the module that exits: the old version keeps serving
    result = node.cli("deploy", bad, "--name", "app")
    assert result.returncode != 0 and "previous version keeps serving" in result.stderr, result.stderr
    assert node.alive, node.log()
    for _ in range(3):
        assert node.body("/app/hello") == (200, "good v1")
    with open(os.path.join(node.webapps, "app", "WEB-INF", "classes", "good.py")) as fh:
        assert "v1" in fh.read()          # its files are back in place, nothing left in .app.previous
    assert not [n for n in os.listdir(node.webapps) if n.startswith(".app")], os.listdir(node.webapps)
    log = node.log()
    assert "called sys.exit(3) while importing boom" in log, log
    # the deploy channel and redeploys still work afterwards
    assert node.cli("list").returncode == 0
    result = node.cli("deploy", write_war(str(tmp_path / "v2.war"), good_app("v2")), "--name", "app")
    assert result.returncode == 0, result.stdout + result.stderr
    assert node.get("/app/hello").text == "good v2"
    node.stop()
    assert node.proc.returncode == 0, node.log()[-3000:]


@pytest.mark.timeout(120)
def test_at_restart_the_other_apps_start_and_serve(node):
    """What a node finds after the reported crash: a WAR that exits at import among good apps.
    Every variant of app code ending the process at start is one failed app."""
    write_folder(os.path.join(node.webapps, "good"), good_app("g"))
    write_war(os.path.join(node.webapps, "app.war"), exit_at_import_app())
    write_folder(os.path.join(node.webapps, "kbint"), listener_app("raise KeyboardInterrupt"))
    write_folder(os.path.join(node.webapps, "exitlst"), listener_app("sys.exit('listener')"))
    write_folder(os.path.join(node.webapps, "timeout"),
                 listener_app("with gevent.Timeout(0.01):\n            gevent.sleep(5)"))
    write_folder(os.path.join(node.webapps, "filter"), filter_init_app())
    write_folder(os.path.join(node.webapps, "odd"), base_exception_at_import_app())
    write_folder(os.path.join(node.webapps, "zlast"), good_app("z"))   # deployed after all the bad ones
    node.start()
    assert node.body("/good/hello") == (200, "good g")
    assert node.body("/zlast/hello") == (200, "good z")
    for name in ("app", "kbint", "exitlst", "timeout", "filter", "odd"):
        assert node.status("/%s/hello" % name) == 404, name
    log = node.log()
    failed = [line for line in log.splitlines() if "deploying /" in line and " failed: " in line]
    for name in ("app", "kbint", "exitlst", "timeout", "filter", "odd"):
        assert [line for line in failed if "deploying /%s from" % name in line], (name, failed)
    assert len(failed) == 6, "\n".join(failed)
    assert any("KeyboardInterrupt" in line for line in failed), failed
    assert any("Timeout" in line for line in failed), failed
    assert any("sys.exit(3)" in line for line in failed), failed
    # the node lives on: its background ticks still deploy (a failed app is retried once fixed)
    write_war(os.path.join(node.webapps, "app.war"), good_app("fixed"))
    node.wait_until(lambda: node.get("/app/hello").text == "good fixed", 15, "the fixed WAR deployed")
    assert node.alive and node.get("/good/hello").status == 200


SESSION_APP = {
    "WEB-INF/web.xml": WEB_XML % {"cls": "keep:Keep", "extra": ""},
    "WEB-INF/classes/keep.py": """from pycat.webapp.servlet import HttpServlet


class Keep(HttpServlet):
    def do_get(self, request, response):
        import model                      # lazily: the servlet class itself always imports
        session = request.get_session()
        if session.get_attribute("thing") is None:
            session.set_attribute("thing", model.Thing())
        response.write(type(session.get_attribute("thing")).__name__)
""",
    "WEB-INF/classes/model.py": "class Thing:\n    pass\n",
}


@pytest.mark.timeout(120)
def test_restart_restoring_sessions_whose_module_now_exits(node):
    """Saved sessions hold an object of the app's module; the module now calls sys.exit() at import.
    Restoring them (unpickling imports it, at the Context's start) is that app's problem only."""
    app = write_folder(os.path.join(node.webapps, "app"), SESSION_APP)
    write_folder(os.path.join(node.webapps, "good"), good_app("g"))
    node.start()
    assert node.body("/app/hello") == (200, "Thing")
    node.stop()
    sessions = os.path.join(node.work, "app", "SESSIONS.ser")
    assert node.proc.returncode == 0 and os.path.exists(sessions), node.log()[-3000:]
    with open(os.path.join(app, "WEB-INF", "classes", "model.py"), "w") as fh:
        fh.write("import sys\nsys.exit(6)\n")
    node.start()
    assert node.body("/good/hello") == (200, "good g")
    assert node.status("/app/hello") == 500          # the app started; its module fails per request
    assert node.alive
    log = node.log()
    assert "called sys.exit(6) while importing" in log, log[-3000:]
    assert node.get("/good/hello").status == 200
    node.stop()
    assert node.proc.returncode == 0, node.log()[-3000:]


SESSION_LISTENER_APP = {
    "WEB-INF/web.xml": """<web-app>
  <listener><listener-class>sl:Listener</listener-class></listener>
  <servlet><servlet-name>s</servlet-name><servlet-class>sl:Sessions</servlet-class></servlet>
  <servlet-mapping><servlet-name>s</servlet-name><url-pattern>/s</url-pattern></servlet-mapping>
</web-app>""",
    "WEB-INF/classes/sl.py": """import sys

from pycat.webapp.servlet import HttpServlet


class Listener:
    def session_destroyed(self, event):
        sys.exit("session listener of " + event.session.id)


class Sessions(HttpServlet):
    def do_get(self, request, response):
        session = request.get_session()
        if request.query_string == "invalidate":
            session.invalidate()
        else:
            session.max_inactive_interval = 1       # expired by the background tick
        response.write(request.query_string)
""",
}


@pytest.mark.timeout(120)
def test_session_listener_exits_in_a_request_and_on_expiry(node):
    write_folder(os.path.join(node.webapps, "sl"), SESSION_LISTENER_APP)
    node.start()
    # in a request: the listener's failure is logged (as any listener's), the request completes
    assert node.body("/sl/s?invalidate") == (200, "invalidate")
    assert node.log().count("session listener Listener.session_destroyed failed") == 1, node.log()[-3000:]
    # on the background tick that expires sessions: logged, and the tick goes on
    assert node.get("/sl/s?expire").status == 200
    node.wait_until(lambda: node.log().count("session listener Listener.session_destroyed failed") == 2,
                    20, "the expiry's listener failure in the log")
    assert node.alive, node.log()[-3000:]
    write_folder(os.path.join(node.webapps, "later"), good_app("later"))    # needs the background loop
    node.wait_until(lambda: node.get("/later/hello").text == "good later", 15, "a deploy on a later tick")
    node.stop()
    assert node.proc.returncode == 0, node.log()[-3000:]


REQUEST_APP = {
    "WEB-INF/web.xml": """<web-app>
  <listener><listener-class>req:Listener</listener-class></listener>
  <filter><filter-name>f</filter-name><filter-class>req:ExitFilter</filter-class></filter>
  <filter-mapping><filter-name>f</filter-name><url-pattern>/filtered</url-pattern></filter-mapping>
  <servlet><servlet-name>ok</servlet-name><servlet-class>req:Ok</servlet-class></servlet>
  <servlet><servlet-name>exit</servlet-name><servlet-class>req:Exit</servlet-class></servlet>
  <servlet><servlet-name>kbint</servlet-name><servlet-class>req:KbInt</servlet-class></servlet>
  <servlet><servlet-name>timeout</servlet-name><servlet-class>req:Sleepy</servlet-class></servlet>
  <servlet><servlet-name>init</servlet-name><servlet-class>req:BadInit</servlet-class></servlet>
  <servlet><servlet-name>ctor</servlet-name><servlet-class>req:BadConstructor</servlet-class></servlet>
  <servlet><servlet-name>iter</servlet-name><servlet-class>req:exit_in_iterable</servlet-class></servlet>
  <servlet><servlet-name>close</servlet-name><servlet-class>req:exit_in_close</servlet-class></servlet>
  <servlet><servlet-name>lazy</servlet-name><servlet-class>req:LazyImport</servlet-class></servlet>
  <servlet><servlet-name>spawn</servlet-name><servlet-class>req:Spawn</servlet-class></servlet>
  <servlet-mapping><servlet-name>ok</servlet-name><url-pattern>/ok</url-pattern></servlet-mapping>
  <servlet-mapping><servlet-name>ok</servlet-name><url-pattern>/filtered</url-pattern></servlet-mapping>
  <servlet-mapping><servlet-name>exit</servlet-name><url-pattern>/exit</url-pattern></servlet-mapping>
  <servlet-mapping><servlet-name>kbint</servlet-name><url-pattern>/kbint</url-pattern></servlet-mapping>
  <servlet-mapping><servlet-name>timeout</servlet-name><url-pattern>/timeout</url-pattern></servlet-mapping>
  <servlet-mapping><servlet-name>init</servlet-name><url-pattern>/init</url-pattern></servlet-mapping>
  <servlet-mapping><servlet-name>ctor</servlet-name><url-pattern>/ctor</url-pattern></servlet-mapping>
  <servlet-mapping><servlet-name>iter</servlet-name><url-pattern>/iter</url-pattern></servlet-mapping>
  <servlet-mapping><servlet-name>close</servlet-name><url-pattern>/close</url-pattern></servlet-mapping>
  <servlet-mapping><servlet-name>lazy</servlet-name><url-pattern>/lazy</url-pattern></servlet-mapping>
  <servlet-mapping><servlet-name>spawn</servlet-name><url-pattern>/spawn</url-pattern></servlet-mapping>
</web-app>
""",
    "WEB-INF/classes/exits_on_import.py": "import sys\nsys.exit(7)\n",
    "WEB-INF/classes/req.py": '''import sys

import gevent

from pycat.webapp.filters import Filter
from pycat.webapp.servlet import HttpServlet


class Listener:
    def request_initialized(self, event):
        if event.servlet_request.query_string == "listener-exit":
            sys.exit("request listener")

    def request_destroyed(self, event):
        if event.servlet_request.query_string == "destroyed-exit":
            raise KeyboardInterrupt


class ExitFilter(Filter):
    def do_filter(self, request, response, chain):
        sys.exit("filter")


class Ok(HttpServlet):
    def do_get(self, request, response):
        response.write("ok")


class Exit(HttpServlet):
    def do_get(self, request, response):
        sys.exit(4)


class KbInt(HttpServlet):
    def do_get(self, request, response):
        raise KeyboardInterrupt


class Sleepy(HttpServlet):
    def do_get(self, request, response):
        with gevent.Timeout(0.01):       # the app's own timeout, not handled by the app
            gevent.sleep(5)


class BadInit(HttpServlet):
    def init(self, config):
        raise SystemExit("init")


class BadConstructor(HttpServlet):
    def __init__(self):
        raise KeyboardInterrupt


class LazyImport(HttpServlet):
    def do_get(self, request, response):
        import exits_on_import  # noqa: F401


class Spawn(HttpServlet):
    def do_get(self, request, response):
        # a greenlet of the app's own that ends in sys.exit: gevent would re-raise it in the
        # main greenlet, i.e. stop the server
        gevent.spawn(sys.exit, 5).join()
        response.write("spawned")


class _Sized:
    def __len__(self):
        return 1

    def __iter__(self):
        raise SystemExit("iterable")


def exit_in_iterable(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _Sized()


class _Closing(list):
    def close(self):
        raise KeyboardInterrupt


def exit_in_close(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _Closing([b"body"])
''',
}


@pytest.mark.timeout(120)
def test_exits_during_requests_are_500s_and_the_node_serves_on(node):
    write_folder(os.path.join(node.webapps, "req"), REQUEST_APP)
    node.start()
    assert node.body("/req/ok") == (200, "ok")          # positive control
    paths = ["/req/exit", "/req/kbint", "/req/timeout", "/req/init", "/req/init", "/req/ctor", "/req/iter",
             "/req/close", "/req/lazy", "/req/filtered", "/req/ok?listener-exit"]
    for path in paths:
        status, body = node.body(path)
        assert status == 500, (path, status, body)
        assert node.alive, (path, node.log()[-3000:])
        assert node.body("/req/ok") == (200, "ok"), path
    # a request listener's request_destroyed that raises: logged, the response already made
    assert node.body("/req/ok?destroyed-exit") == (200, "ok")
    assert node.alive
    status, body = node.body("/req/spawn")
    assert (status, body) == (200, "spawned")
    assert node.alive, node.log()[-3000:]
    assert node.body("/req/ok") == (200, "ok")
    log = node.log()
    for name in ("exit", "kbint", "timeout", "init", "ctor", "iter", "close", "lazy"):
        assert "Servlet.service() for servlet [%s] in context [/req] threw exception" % name in log, name
    assert "sys.exit(4)" in log and "sys.exit(7)" in log
    assert "failed with SystemExit" in log          # the app's own greenlet: reported, not re-raised
    node.stop()
    assert node.proc.returncode == 0, log[-3000:]
