"""One real pycat node for a test: a fresh CATALINA_BASE and a ``pycat run`` subprocess.

    node = Node(tmp_path / "node1", apps=["path/to/app-folder", "path/to/shop.war", App("src", war=True)])
    node.start()                              # returns once its HTTP connector answers
    assert node.get("/shop/").status == 200
    node.kill(); node.restart(); node.stop()
    node.close()                              # stopped if needed, ports released

The base: ``conf/server.xml`` (``serverxml.DEFAULT_SERVER_XML``, a string, or a file, made private
by ``serverxml.isolate``, plus fragments and attributes), ``conf/catalina.properties`` (the ports,
``jvm.route`` = the node's name, the test's properties), ``conf/logging.ini`` (the stock format at
``log_level``), ``conf/web.xml`` and ``conf/tomcat-users.xml`` from CATALINA_HOME when present,
``webapps/`` (or the Host's appBase) with the apps, ``logs/``, ``work/``, ``temp/``. Everything the
process writes to stdout and stderr is appended to ``logs/catalina.out`` (``log()``, ``tail()``,
``mark()``/``log(since)`` to read only what a restart wrote).

A node never outlives the test session (see ``reap``): on Linux the process is started through a
tiny launcher that sets PR_SET_PDEATHSIG (SIGKILL when the starting thread's process dies, even by
SIGKILL) and then execs ``python -m pycat run``; every node leads its own process group, which
``stop``/``kill`` and the reaper signal as a whole; and an atexit hook plus the plugin's
``pytest_sessionfinish`` kill whatever is still running. Start nodes from the test's own thread:
the death signal follows the thread that started the process.
"""
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pycat
from pycat.fileutil import remove_inside
from pycat.testing import client as http
from pycat.testing import ports as _ports
from pycat.testing import serverxml

HOME = os.path.dirname(os.path.dirname(os.path.abspath(pycat.__file__)))
STARTUP_TIMEOUT = 60.0
LOG_NAME = "catalina.out"
CONF_FILES = ("web.xml", "tomcat-users.xml", "context.xml")
EMPTY_USERS = '<?xml version="1.0" encoding="UTF-8"?>\n<tomcat-users version="1.0"/>\n'

LOGGING_INI = """# written by pycat.testing: conf/logging.ini's format at level {level}
[loggers]
keys=root

[handlers]
keys=console

[formatters]
keys=tomcat

[logger_root]
level={level}
handlers=console

[handler_console]
class=StreamHandler
level=NOTSET
formatter=tomcat
args=(sys.stderr,)

[formatter_tomcat]
format=%(asctime)s.%(msecs)03d %(levelname)s [%(threadName)s] %(name)s %(message)s
datefmt=%d-%b-%Y %H:%M:%S
"""

def logging_ini(home, level):
    """CATALINA_HOME's conf/logging.ini with the root logger at ``level`` (the stock format, so a
    test reads the lines a user's node writes), or the same format written here without one."""
    level = str(level or "INFO").upper()
    try:
        with open(os.path.join(home, "conf", "logging.ini")) as fh:
            stock = fh.read()
    except OSError:
        stock = ""
    root = re.search(r"^\[logger_root\]\n(?:(?!\[).*\n)*?level=\w+", stock, re.M)
    if root is None:
        return LOGGING_INI.format(level=level)
    head = re.sub(r"level=\w+$", "level=" + level, root.group(0))
    return stock[:root.start()] + head + stock[root.end():]


# Linux: die with the parent (PR_SET_PDEATHSIG = 1), then become ``python -m pycat run``. The parent
# pid is checked after the prctl: if the parent died in between, nobody would ever signal us.
_LAUNCHER = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "if libc.prctl(1, 9, 0, 0, 0) != 0: sys.exit('pycat.testing: prctl failed')\n"
    "if os.getppid() != int(sys.argv[1]): os._exit(70)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


class NodeError(AssertionError):
    """A node did not do what the test waited for (died, never answered); carries its log tail."""


class App:
    """An app to put in a node's appBase: ``source`` is a folder (copied as an exploded app) or a
    .war (copied); ``war=True`` builds a WAR from the folder first (as ``pycat war`` does). ``name``
    is the file/folder name in appBase (the context name: "ROOT", "shop", "shop##2"), by default
    the source's own."""

    def __init__(self, source, name=None, war=False):
        self.source = os.path.abspath(str(source))
        self.war = war or self.source.endswith(".war")
        base = os.path.basename(self.source.rstrip(os.sep))
        if base.endswith(".war"):
            base = base[:-4]
        self.name = name or base

    @classmethod
    def of(cls, spec):
        return spec if isinstance(spec, App) else App(spec)

    def __repr__(self):
        return "App(%r, name=%r, war=%r)" % (self.source, self.name, self.war)

    def install(self, app_base):
        """Copy (or build) into ``app_base`` the way a careful operator drops a file: a temporary
        name, then a rename, so an autoDeploy tick never sees half a WAR. Returns the target path."""
        os.makedirs(app_base, exist_ok=True)
        # the name becomes a file or folder name in appBase: "..", "a/b" or "" would write (and
        # the folder case first remove) outside it
        if not self.name or self.name in (".", "..") or os.sep in self.name or "\0" in self.name:
            raise ValueError("App name %r is not a file name inside appBase" % (self.name,))
        if self.war:
            target = os.path.join(app_base, self.name + ".war")
            tmp = os.path.join(app_base, ".%s.war.part" % self.name)
            if os.path.isdir(self.source):
                build_war(self.source, tmp)
            else:
                shutil.copyfile(self.source, tmp)
            os.replace(tmp, target)
            return target
        target = os.path.join(app_base, self.name)
        if not remove_inside(target, [app_base]):
            raise ValueError("%s is not inside %s" % (target, app_base))
        tmp = os.path.join(app_base, ".%s.part" % self.name)
        shutil.copytree(self.source, tmp, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        os.replace(tmp, target)
        return target


def build_war(folder, out_path):
    """``pycat war FOLDER -o OUT``, in this process."""
    from pycat.webapp.war import build_war as build
    return build(str(folder), str(out_path))


# -- the reaper --------------------------------------------------------------------------------------
_live = set()
_live_lock = threading.Lock()
_created_hooks = []
_atexit_registered = False


def on_node_created(callback):
    """Call ``callback(node)`` for every Node made from now on (the plugin ties them to the test)."""
    _created_hooks.append(callback)


def live_nodes():
    with _live_lock:
        return list(_live)


def reap():
    """SIGKILL every node process group this process started that still runs; returns how many."""
    nodes = live_nodes()
    for node in nodes:
        node._kill_group(signal.SIGKILL)
    for node in nodes:
        node._reaped()
    return len(nodes)


def _register(node):
    global _atexit_registered
    with _live_lock:
        _live.add(node)
        if not _atexit_registered:
            atexit.register(reap)
            _atexit_registered = True


def _unregister(node):
    with _live_lock:
        _live.discard(node)


def _write_properties(path, props):
    def esc(text):
        return str(text).replace("\\", "\\\\").replace("\n", "\\n")
    with open(path, "w") as fh:
        fh.write("# written by pycat.testing\n")
        for key, value in props.items():
            fh.write("%s=%s\n" % (esc(key).replace("=", "\\=").replace(":", "\\:"), esc(value)))


def read_server_xml(server_xml):
    """The XML text of ``server_xml``: None for the default, XML text (it starts with "<"), or a path."""
    if server_xml is None:
        return serverxml.DEFAULT_SERVER_XML
    if hasattr(server_xml, "read_text"):
        return server_xml.read_text()
    text = str(server_xml)
    if text.lstrip().startswith("<"):
        return text
    with open(text, encoding="utf-8") as fh:
        return fh.read()


class Node:
    """One node (module doc). The base is laid out at construction, so a test can change files
    before ``start()``.

    ``server_xml``: None (the default), XML text, or a path. ``apps``: App / folder / .war paths.
    ``name``: the node's name and jvmRoute (property ``jvm.route``). ``properties``: more
    catalina.properties entries (a ``NAME.port`` given here is not replaced by a free port).
    ``fragments``: {"server"|"service"|"engine"|"host": XML}; ``attributes``: {element: {attr:
    value}}. ``log_level``: the root logger's level. ``isolate=False`` writes the XML as given
    (no port or address rewriting). ``group``/``shared_port``: the cluster's multicast group and
    port (``Cluster`` passes them). ``env``: more environment for the process; ``args``: more
    arguments after ``pycat run``."""

    def __init__(self, base, server_xml=None, apps=(), name="node1", properties=None, fragments=None,
                 attributes=None, log_level="INFO", isolate=True, group=None, shared_port=None, env=None,
                 args=(), startup_timeout=STARTUP_TIMEOUT, home=HOME):
        self.base = os.path.abspath(str(base))
        self.name = name
        self.home = home
        self.startup_timeout = startup_timeout
        self.env_extra = dict(env or {})
        self.args = list(args)
        self.proc = None
        self.starts = 0
        self.start_mark = 0
        self.remove_base = False          # the plugin sets it for the nodes its fixtures made
        self._held = []                    # ports this node took from the registry
        self._closed = False
        self._terminating = False
        self.properties = {"jvm.route": name}
        self.properties.update({k: str(v) for k, v in (properties or {}).items()})

        root = serverxml.parse(read_server_xml(server_xml))
        serverxml.add_fragments(root, fragments)
        serverxml.set_attributes(root, attributes)
        self.literal_ports = {}
        if isolate:
            self.literal_ports = serverxml.isolate(root, self._take_port, group, shared_port)
        text = serverxml.serialize(root)
        self.ports = {}
        for prop in serverxml.port_properties(text):
            if prop not in self.properties:
                self.properties[prop] = str(self._take_port())
        for prop, value in self.properties.items():
            if prop.endswith("port") and str(value).strip().lstrip("-").isdigit():
                self.ports[prop[:-len(".port")] if prop.endswith(".port") else prop] = int(value)
        for old, new in self.literal_ports.items():
            self.ports[str(old)] = new
        self.server_xml = text
        self.root = root
        self.http_port = serverxml.http_connector_port(root, self.properties)
        self.shutdown_port = self._resolved_int(root.get("port"))
        receiver = root.find(".//Receiver")
        self.receiver_port = self._resolved_int(receiver.get("port")) if receiver is not None else None

        self.conf_dir = os.path.join(self.base, "conf")
        self.logs_dir = os.path.join(self.base, "logs")
        self.work_dir = os.path.join(self.base, "work")
        self.app_base = os.path.join(self.base, serverxml.app_base(root))
        self.log_path = os.path.join(self.logs_dir, LOG_NAME)
        self._layout(log_level)
        for app in apps or ():
            self.install(app)
        for hook in list(_created_hooks):
            hook(self)

    def _take_port(self):
        port = _ports.free_port()
        self._held.append(port)
        return port

    def _resolved_int(self, value):
        value = serverxml.resolve(value, self.properties)
        return int(value) if value is not None and value.strip().lstrip("-").isdigit() else None

    def _layout(self, log_level):
        for d in ("conf", "logs", "work", "temp"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        os.makedirs(self.app_base, exist_ok=True)
        with open(os.path.join(self.conf_dir, "server.xml"), "w", encoding="utf-8") as fh:
            fh.write(self.server_xml)
        _write_properties(os.path.join(self.conf_dir, "catalina.properties"), self.properties)
        with open(os.path.join(self.conf_dir, "logging.ini"), "w") as fh:
            fh.write(logging_ini(self.home, log_level))
        for name in CONF_FILES:
            src = os.path.join(self.home, "conf", name)
            dst = os.path.join(self.conf_dir, name)
            if os.path.exists(src) and not os.path.exists(dst):
                shutil.copy(src, dst)
        users = os.path.join(self.conf_dir, "tomcat-users.xml")
        if not os.path.exists(users):
            with open(users, "w") as fh:
                fh.write(EMPTY_USERS)

    def __repr__(self):
        return "<Node %s http=%s pid=%s base=%s>" % (self.name, self.http_port, self.pid, self.base)

    # -- where -----------------------------------------------------------------------------------------
    @property
    def url(self):
        """``http://127.0.0.1:<http port>`` (no trailing slash)."""
        return "http://127.0.0.1:%d" % self.http_port if self.http_port else None

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self):
        return self.proc.poll() if self.proc is not None else None

    # -- the process -----------------------------------------------------------------------------------
    def command(self):
        """The argv of ``pycat run`` for this node."""
        return [sys.executable, "-m", "pycat", "run", "--base", self.base, "--home", self.home] + self.args

    def env(self):
        env = dict(os.environ)
        for key in ("CATALINA_PID", "CATALINA_OUT", "JAVA_OPTS", "CATALINA_OPTS", "PYTEST_CURRENT_TEST"):
            env.pop(key, None)
        env.update(CATALINA_BASE=self.base, CATALINA_HOME=self.home, PYTHONUNBUFFERED="1")
        env.update(self.env_extra)
        return env

    def start(self, wait=True, timeout=None):
        """Spawn the process (output appended to logs/catalina.out); with ``wait`` return once its
        HTTP connector answers (``wait_ready``)."""
        if self._closed:
            raise RuntimeError("%s was closed" % self.name)
        if self.alive:
            raise RuntimeError("%s is already running (pid %d)" % (self.name, self.pid))
        self.start_mark = self.mark()
        self._terminating = False
        argv = self.command()
        if sys.platform.startswith("linux"):
            argv = [sys.executable, "-S", "-c", _LAUNCHER, str(os.getpid())] + argv
        with open(self.log_path, "ab") as out:
            out.write(("---- pycat.testing: starting %s (start %d): %s\n"
                       % (self.name, self.starts + 1, " ".join(self.command()))).encode())
            out.flush()
            self.proc = subprocess.Popen(argv, env=self.env(), cwd=self.base, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         close_fds=True)
        _register(self)
        self.starts += 1
        if wait:
            self.wait_ready(timeout=timeout)
        return self

    def wait_ready(self, path="/", status=None, timeout=None):
        """Wait until an HTTP request for ``path`` gets an answer (``status``, if given) and return
        it; raises NodeError at once if the process exits. Without an HTTP connector, wait for the
        deploy channel instead."""
        timeout = self.startup_timeout if timeout is None else timeout
        if self.http_port is None:
            return self.wait_until(lambda: os.path.exists(self.token_path), timeout,
                                   "%s's deploy channel" % self.name)

        def answer():
            resp = http.try_request(self, "GET", path, timeout=5.0)
            if resp is not None and (status is None or resp.status == status):
                return resp
            return None
        what = "%s to answer %s%s" % (self.name, path, "" if status is None else " with %d" % status)
        return self.wait_until(answer, timeout, what)

    def wait_until(self, condition, timeout=None, what="a condition", interval=0.05):
        """Poll ``condition()`` until it returns something true and return that; NodeError (with the
        log tail) on timeout, or at once when the process has exited."""
        timeout = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise NodeError("%s exited with code %s while waiting for %s; its log:\n%s"
                                % (self.name, self.proc.returncode, what, self.tail()))
            value = condition()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise NodeError("timed out after %.0f s waiting for %s; %s's log:\n%s"
                                % (timeout, what, self.name, self.tail()))
            time.sleep(interval)

    def stop(self, timeout=30.0):
        """A graceful stop (SIGTERM, what Ctrl-C or ``pycat stop`` amount to: apps stopped,
        sessions saved, peers told); SIGKILL after ``timeout``. Returns the exit code."""
        if self.alive:
            try:
                self.terminate()
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group(signal.SIGKILL)
                self.proc.wait(10)
        self._reaped()
        return self.returncode

    def terminate(self):
        """Send SIGTERM once (a graceful stop begins) and return at once; ``stop`` waits for it."""
        if self.alive and not self._terminating:
            self._terminating = True
            self.proc.send_signal(signal.SIGTERM)

    def kill(self):
        """``kill -9``: no goodbye, nothing saved; peers notice through their failure detection.
        Returns the exit code (-9)."""
        if self.alive:
            self._kill_group(signal.SIGKILL)
            self.proc.wait(30)
        self._reaped()
        return self.returncode

    def restart(self, wait=True, timeout=None, graceful=True):
        """Stop (gracefully, or ``kill`` with ``graceful=False``) if running, then start again on the
        same base and ports."""
        if self.alive:
            self.stop() if graceful else self.kill()
        return self.start(wait=wait, timeout=timeout)

    def _kill_group(self, sig):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        except OSError:
            try:
                self.proc.send_signal(sig)
            except OSError:
                pass

    def _reaped(self):
        """The process ended: collect it, and whatever its group left behind."""
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            self._kill_group(signal.SIGKILL)     # an app's child processes, if any
        _unregister(self)

    def close(self, remove_base=None):
        """Stop if needed (SIGKILL after 30 s), release the ports; remove the base if asked (or
        ``self.remove_base``)."""
        if self._closed:
            return
        self.stop()
        self._closed = True
        for port in self._held:
            _ports.release_port(port)
        self._held = []
        if remove_base if remove_base is not None else self.remove_base:
            shutil.rmtree(self.base, ignore_errors=True)

    # -- the log ---------------------------------------------------------------------------------------
    def mark(self):
        """The current size of logs/catalina.out: pass it to ``log(since=)``."""
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log(self, since=0):
        """What the process wrote (stdout and stderr) from byte ``since`` on."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(since)
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, lines=80):
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_log(self, text, since=None, timeout=None, what=None):
        """Wait until ``text`` (a str, or a compiled regex) appears after ``since`` (default: this
        process's start); returns the log from ``since`` (or the match for a regex)."""
        since = self.start_mark if since is None else since
        what = what or "%s to log %r" % (self.name, getattr(text, "pattern", text))

        def seen():
            log = self.log(since)
            if hasattr(text, "search"):
                return text.search(log)
            return log if text in log else None
        return self.wait_until(seen, timeout, what)

    # -- apps ------------------------------------------------------------------------------------------
    def install(self, app):
        """Put an app (App, folder or .war) into appBase: deployed at start, or by autoDeploy on a
        running node. Returns the path written."""
        return App.of(app).install(self.app_base)

    @property
    def token_path(self):
        return os.path.join(self.work_dir, "pycat-manager.json")

    def call(self, request, timeout=60.0):
        """One request on the node's deploy channel (pycat.startup.manager_api's wire format);
        returns the reply dict. Waits for the channel's token file first."""
        from pycat.startup.manager_api import call
        self.wait_until(lambda: os.path.exists(self.token_path), timeout, "%s's deploy channel" % self.name)
        return call(self.base, request, timeout)

    def deploy(self, app, name=None, timeout=60.0):
        """Deploy (or redeploy) on the running node, as ``pycat deploy`` does: a WAR, or a folder
        zipped into one. Returns the reply's message; AssertionError if the node refused."""
        app = App.of(app)
        name = name or app.name
        war = app.source
        tmp = None
        if os.path.isdir(war):
            tmp = os.path.join(self.base, "temp", ".deploy-%s-%d.war" % (name.replace("/", "_"), time.monotonic_ns()))
            build_war(war, tmp)
            war = tmp
        try:
            reply = self.call({"cmd": "deploy", "war": war, "name": name, "host": None}, timeout)
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
        assert reply.get("ok"), "%s refused to deploy %s: %s" % (self.name, name, reply.get("error"))
        return reply.get("message")

    def undeploy(self, name, timeout=60.0):
        """Undeploy ``name`` ("/shop", "shop", "shop##2", "ROOT") and delete its files from appBase."""
        reply = self.call({"cmd": "undeploy", "name": name, "host": None}, timeout)
        assert reply.get("ok"), "%s refused to undeploy %s: %s" % (self.name, name, reply.get("error"))
        return reply.get("message")

    def list_apps(self):
        """[{"name", "path", "version", "state", "docBase", "sessions", ...}] of the running node."""
        reply = self.call({"cmd": "list"})
        assert reply.get("ok"), reply
        return reply["apps"]

    def cluster_status(self, timeout=10.0):
        """The node's own view of its cluster(s) (what /manager/cluster/json answers)."""
        reply = self.call({"cmd": "cluster-status"}, timeout)
        assert reply.get("ok"), reply
        return reply["status"]

    def cli(self, *args, timeout=90):
        """``pycat ARGS --base <base>`` in a subprocess (CompletedProcess, text output)."""
        return subprocess.run([sys.executable, "-m", "pycat", *args, "--base", self.base], env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    # -- HTTP ------------------------------------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=http.DEFAULT_TIMEOUT):
        """One request without cookies (a Client keeps a user's)."""
        return http.request(self, method, path, body, headers, timeout)

    def get(self, path, headers=None, timeout=http.DEFAULT_TIMEOUT):
        return http.request(self, "GET", path, None, headers, timeout)

    def try_get(self, path, headers=None, timeout=5.0):
        """``get``, or None while nothing answers."""
        return http.try_request(self, "GET", path, None, headers, timeout)
