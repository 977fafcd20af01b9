"""Catalina: load server.xml, start the Server, wait for the shutdown command, stop.

The same sequence as Tomcat's Catalina (load -> start -> await -> stop/destroy). Signal
handlers only *queue* a shutdown (``server.request_shutdown()``), gunicorn style: the main
greenlet, parked in ``server.await_shutdown()``, does the stopping. A start failure such as a
port already in use becomes one clear line on stderr and exit code 1; every port is bound
before anything is deployed (Server.init), so such a failure touches nothing of the base.
Log records carry the name of the greenlet that wrote them (name_log_records), and a
SystemExit/KeyboardInterrupt ending some greenlet no longer ends the node
(keep_system_exits_in_their_greenlet).
"""
import gc
import logging
import logging.config
import os
import re
import signal
import sys
import time

from pycat.errors import ConfigError, LifecycleError
from pycat.startup.digester import Digester
from pycat.startup.properties import build_properties, load_properties_file

log = logging.getLogger(__name__)

# the same fields as conf/logging.ini's; [threadName] is the greenlet (see name_log_records)
LOG_FORMAT = "%(asctime)s %(levelname)s [%(threadName)s] %(name)s %(message)s"

_record_factory_installed = False


def name_log_records():
    """Install (once) a log record factory that puts the running greenlet's name into
    ``record.threadName``, so every handler and format (conf/logging.ini's [%(threadName)s]) shows
    it. Under gevent every greenlet is one "thread" to the logging module, shown as "Dummy-N";
    instead: "main" for the main greenlet, a gevent Greenlet's name (pycat names the greenlets of
    its components "<component>.<function>" and connection greenlets "http-<port>-exec-<n>"), "Hub"
    for the event loop, and the thread name logging found for anything else (a thread pool's
    threads)."""
    global _record_factory_installed
    if _record_factory_installed:
        return
    _record_factory_installed = True
    import gevent
    import gevent.hub
    import greenlet

    getcurrent, Greenlet, Hub = greenlet.getcurrent, gevent.Greenlet, gevent.hub.Hub
    main = getcurrent()      # called from the main greenlet of the main thread (configure_logging)
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        current = getcurrent()
        if current is main:
            record.threadName = "main"
        elif isinstance(current, Greenlet):
            record.threadName = current.name
        elif isinstance(current, Hub):
            record.threadName = "Hub"
        return record

    logging.setLogRecordFactory(factory)


def find_conf(name, catalina_base, catalina_home):
    """conf/<name> from CATALINA_BASE, else from CATALINA_HOME (Tomcat's lookup order); or None."""
    for root in (catalina_base, catalina_home):
        if root:
            path = os.path.join(root, "conf", name)
            if os.path.isfile(path):
                return path
    return None


def configure_logging(catalina_base, catalina_home, level=None):
    """Logging from conf/logging.ini (base, then home); a plain stderr handler if there is none.

    Paths in the file may use %(catalina_base)s and %(catalina_home)s. In the background the
    process's stdout/stderr are CATALINA_OUT, so a console handler ends up in logs/catalina.out.
    """
    name_log_records()
    path = find_conf("logging.ini", catalina_base, catalina_home)
    if path:
        try:
            logging.config.fileConfig(path, defaults={"catalina_base": str(catalina_base),
                                                      "catalina_home": str(catalina_home)},
                                      disable_existing_loggers=False)
        except Exception as exc:  # a broken logging.ini must not hide the server's own errors
            logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
            log.error("cannot apply %s (%s); logging to stderr", path, exc)
    else:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    if level is not None:
        logging.getLogger().setLevel(level)
    return path


def root_cause_message(exc):
    """The most specific message in an exception chain (the bind error, not its wrappers)."""
    messages = []
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        messages.append(str(exc))
        exc = exc.__cause__
    busy = [m for m in reversed(messages) if "already in use" in m.lower()]
    # the innermost one that names the port (an OSError below it says only "[Errno 98] ...")
    for message in busy:
        if re.search(r":\d+", message):
            return message
    if busy:
        return busy[0]
    return messages[0] if messages else ""


def keep_system_exits_in_their_greenlet():
    """gevent re-raises a SystemExit or KeyboardInterrupt that ends any greenlet in the main
    greenlet: a greenlet an app spawns that calls sys.exit() would stop the node. Once the
    signal handlers are installed, SIGINT/SIGTERM only queue a shutdown, so neither exception
    can mean "stop the server" any more: the hub prints it with its greenlet and the node goes
    on (the places where pycat calls app code already turn them into failures, see
    pycat.webapp.loader.AppAbort; this is the net under what app code starts itself)."""
    import gevent
    hub = gevent.get_hub()
    hub.SYSTEM_ERROR = tuple(e for e in hub.SYSTEM_ERROR if not issubclass(e, (SystemExit, KeyboardInterrupt)))
    # and say so: gevent does not print a SystemExit that ends a greenlet, it only re-raised it
    hub.NOT_ERROR = tuple(e for e in hub.NOT_ERROR if e is not SystemExit)


class Catalina:
    def __init__(self, catalina_base, catalina_home=None, defines=()):
        self.catalina_base = os.path.abspath(str(catalina_base))
        self.catalina_home = os.path.abspath(str(catalina_home or catalina_base))
        self.defines = list(defines)
        self.server = None
        self.warnings = []
        #: (element path, line, object) of every object server.xml created, in document order
        self.elements = []
        self.properties = {}
        self.config_file = None

    def default_config(self):
        return os.path.join(self.catalina_base, "conf", "server.xml")

    def load_properties(self):
        path = find_conf("catalina.properties", self.catalina_base, self.catalina_home)
        file_props = {}
        if path:
            try:
                file_props = load_properties_file(path)
            except OSError as exc:
                raise ConfigError("cannot read %s: %s" % (path, exc)) from None
        self.properties = build_properties(self.catalina_base, self.catalina_home, file_props, self.defines)
        return self.properties

    def load(self, config=None, strict=False):
        """Parse server.xml into a Server (not started). Raises ConfigError."""
        self.config_file = os.path.abspath(config or self.default_config())
        props = self.load_properties()
        digester = Digester(properties=props, strict=strict)
        t0 = time.monotonic()
        server = digester.parse_file(self.config_file)
        self.warnings = digester.warnings
        self.elements = digester.created
        if not hasattr(server, "await_shutdown"):
            raise ConfigError("the root object %s is not a Server" % type(server).__name__,
                              file=self.config_file)
        server.catalina_base = self.catalina_base
        server.catalina_home = self.catalina_home
        self.server = server
        log.info("Server initialization from %s in [%d] milliseconds", self.config_file,
                 (time.monotonic() - t0) * 1000)
        return server

    def start(self):
        t0 = time.monotonic()
        # init binds every port first, so a clash names the port; then the base lock covers a
        # second server on free ports (-Dhttp.port=..., shutdown port -1): it would deploy the
        # same apps, restore their SESSIONS.ser and rewrite the deploy token of the live one
        self.server.init()
        self.lock_base()
        self.server.start()
        # Everything loaded so far lives as long as the server: move it out of the collector's
        # reach so full collections under load scan only request garbage (5-8 ms pauses -> <1 ms).
        gc.collect()
        gc.freeze()
        log.info("Server startup in [%d] milliseconds", (time.monotonic() - t0) * 1000)

    def await_shutdown(self):
        self.server.await_shutdown()

    def stop(self):
        server = self.server
        if server is None:
            return
        try:
            server.stop()
        finally:
            server.destroy()
            self.unlock_base()
        log.info("Server stopped")

    def lock_base(self):
        """Hold an exclusive lock on work/pycat.lock for as long as this server runs: one live
        server per CATALINA_BASE. flock, not a pid file: the kernel drops it when the process dies
        however it dies, so a crash never leaves a stale lock behind."""
        import fcntl
        work = os.path.join(self.catalina_base, "work")
        os.makedirs(work, exist_ok=True)
        path = os.path.join(work, "pycat.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise LifecycleError("another pycat server (pid %s) is running on CATALINA_BASE %s"
                                 % (owner, self.catalina_base)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"%d\n" % os.getpid(), 0)
        self._base_lock = fd

    def unlock_base(self):
        fd = getattr(self, "_base_lock", None)
        if fd is not None:
            self._base_lock = None
            os.close(fd)            # closing the descriptor releases the flock

    def install_signal_handlers(self):
        import gevent

        def queue_shutdown(signum):
            current = gevent.getcurrent()
            if isinstance(current, gevent.Greenlet):      # gevent runs the handler in a fresh greenlet
                current.name = "signal-handler"
            log.info("Signal %s received; shutting down", signal.Signals(signum).name)
            self.server.request_shutdown()

        handlers = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            handlers.append(gevent.signal_handler(signum, queue_shutdown, signum))
        return handlers

    def run(self, config=None, strict=False, stderr=None):
        """load, start, await, stop. Returns the process exit code."""
        stderr = stderr or sys.stderr
        try:
            self.load(config, strict)
        except ConfigError as exc:
            log.error("%s", exc)
            stderr.write("pycat: configuration error: %s\n" % exc)
            return 1
        handlers = self.install_signal_handlers()
        keep_system_exits_in_their_greenlet()
        try:
            try:
                self.start()
            except LifecycleError as exc:
                log.error("Server failed to start: %s", exc)
                stderr.write("pycat: cannot start: %s\n" % root_cause_message(exc))
                self._stop_quietly()
                return 1
            self.await_shutdown()
            self.stop()
            return 0
        finally:
            for handler in handlers:
                handler.cancel()

    def _stop_quietly(self):
        try:
            self.stop()
        except Exception:
            log.debug("stop after a failed start", exc_info=True)
