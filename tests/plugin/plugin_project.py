"""A user's project outside the repository, and pytest run on it in a subprocess, as a user would
(the plugin found through its entry point; no conftest)."""
import os
import subprocess
import sys
import textwrap
import time

HOME = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(HOME, "examples", "flask-cluster")

# a distributable WSGI app counting visits in the session; writes its folder with write_app()
COUNTER_WEB_XML = """<web-app><distributable/>
  <servlet><servlet-name>c</servlet-name><servlet-class>counter:app</servlet-class></servlet>
  <servlet-mapping><servlet-name>c</servlet-name><url-pattern>/*</url-pattern></servlet-mapping>
</web-app>
"""
COUNTER_PY = '''def app(environ, start_response):
    s = environ["pycat.session"]
    s["n"] = s.get("n", 0) + 1
    body = ("n=%d\\n" % s["n"]).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def write_app(folder):
    os.makedirs(os.path.join(folder, "WEB-INF", "classes"), exist_ok=True)
    with open(os.path.join(folder, "WEB-INF", "web.xml"), "w") as fh:
        fh.write(COUNTER_WEB_XML)
    with open(os.path.join(folder, "WEB-INF", "classes", "counter.py"), "w") as fh:
        fh.write(COUNTER_PY)
    return folder


def make_project(root, tests):
    """``root``/counter (the app) and ``root``/tests/<name> for each {name: source}."""
    assert not os.path.abspath(str(root)).startswith(HOME + os.sep)
    write_app(os.path.join(str(root), "counter"))
    os.makedirs(os.path.join(str(root), "tests"), exist_ok=True)
    for name, source in tests.items():
        with open(os.path.join(str(root), "tests", name), "w") as fh:
            fh.write(textwrap.dedent(source))
    return str(root)


def env():
    """The environment of a user's shell: nothing of the pytest (or xdist worker) running us."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CATALINA_"))}
    out["PYTHONDONTWRITEBYTECODE"] = "1"
    return out


def pytest_argv(project, basetemp, *args):
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--basetemp", str(basetemp),
            "-o", "timeout=150", *args]


def run_pytest(project, basetemp, *args, timeout=170):
    """pytest on ``project`` in a subprocess; CompletedProcess with the combined output in stdout."""
    return subprocess.run(pytest_argv(project, basetemp, *args), cwd=str(project), env=env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)


def gone(pid):
    """True once ``pid`` no longer runs (no such process, or a zombie nobody reaped yet)."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.05)
