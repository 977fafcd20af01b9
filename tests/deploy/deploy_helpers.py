"""Apps on disk, WARs, and a started server whose Host has a HostConfig (in-process, real sockets)."""
import logging
import os
import zipfile

from pycat_harness import Tree, get, wait_for
from pycat.startup.host_config import HostConfig

WEB_XML = """<web-app>
  <servlet><servlet-name>main</servlet-name><servlet-class>%(cls)s</servlet-class>%(los)s</servlet>
  <servlet-mapping><servlet-name>main</servlet-name><url-pattern>/hello</url-pattern></servlet-mapping>
</web-app>
"""

SERVLET = """import utils
from pycat.webapp.servlet import HttpServlet

VALUE = %(value)r


class Hello(HttpServlet):
    def do_get(self, request, response):
        import utils.more        # a lazy import at request time finds this app's package too
        response.set_header("Content-Type", "text/plain")
        response.write("%%s %%s %%s" %% (VALUE, utils.WHO, utils.more.MORE))
"""


def app_files(value, who="x", extra=None, cls="app:Hello", load_on_startup=False):
    files = {
        "WEB-INF/web.xml": WEB_XML % {"cls": cls, "los": "<load-on-startup>1</load-on-startup>"
                                      if load_on_startup else ""},
        "WEB-INF/classes/app.py": SERVLET % {"value": value},
        "WEB-INF/classes/utils/__init__.py": "WHO = %r\n" % who,
        "WEB-INF/classes/utils/more.py": "MORE = %r\n" % ("more-" + who),
        "index.html": "static %s\n" % value,
    }
    files.update(extra or {})
    return files


def write_folder(folder, files):
    for rel, content in files.items():
        full = os.path.join(str(folder), rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as fh:
            fh.write(content.encode() if isinstance(content, str) else content)
    return str(folder)


def write_war(path, files):
    """Write a WAR next to its final name, then move it in (as a careful copy would)."""
    path = str(path)
    tmp = os.path.join(os.path.dirname(path), ".tmp-" + os.path.basename(path))
    with zipfile.ZipFile(tmp, "w") as zf:
        for rel, content in files.items():
            zf.writestr(rel, content)
    os.replace(tmp, path)
    return path


def bump_mtime(path, seconds=2):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


class Node:
    """``configure(host)``, if given, runs before the server starts (to add a realm, valves, a
    cluster: what must be running by the time HostConfig deploys)."""

    def __init__(self, base, tick=None, configure=None, **host_attrs):
        self.tree = Tree(base, contexts={}, start=False)
        self.host = self.tree.host
        self.config = HostConfig()
        self.host.add_lifecycle_listener(self.config)
        for k, v in host_attrs.items():
            setattr(self.host, k, v)
        if tick:
            self.tree.engine.background_processor_delay = tick
        if configure is not None:
            configure(self.host)
        self.app_base = os.path.join(str(base), "webapps")
        self.tree.server.start()
        self.port = self.tree.port

    def get(self, path, **kw):
        return get(self.port, path, **kw)

    def body(self, path):
        status, _, payload = get(self.port, path)
        return status, payload.decode("utf-8", "replace")

    def wait_body(self, path, expected, timeout=10.0):
        def ok():
            return self.body(path) == (200, expected)
        wait_for(ok, timeout=timeout, interval=0.05)

    def wait_status(self, path, status, timeout=10.0):
        wait_for(lambda: self.get(path)[0] == status, timeout=timeout, interval=0.05)

    def stop(self):
        self.tree.stop()


class LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    @property
    def text(self):
        return "\n".join(r.getMessage() for r in self.records)

    def __enter__(self):
        logger = logging.getLogger("pycat")
        self.saved_level = logger.level
        logger.addHandler(self)
        logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        logger = logging.getLogger("pycat")
        logger.removeHandler(self)
        logger.setLevel(self.saved_level)
