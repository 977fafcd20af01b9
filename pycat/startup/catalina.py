"""Catalina: load server.xml, start the Server, wait for the shutdown command, stop.

The same sequence as Tomcat's Catalina (load -> start -> await -> stop/destroy). Signal
handlers only *queue* a shutdown (``server.request_shutdown()``), gunicorn style: the main
greenlet, parked in ``server.await_shutdown()``, does the stopping. A start failure such as a
port already in use becomes one clear line on stderr and exit code 1.
"""
import gc
import logging
import logging.config
import os
import signal
import sys
import time

from pycat.errors import ConfigError, LifecycleError
from pycat.startup.digester import Digester
from pycat.startup.properties import build_properties, load_properties_file

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


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
    for message in reversed(messages):
        if "already in use" in message.lower():
            return message
    return messages[0] if messages else ""


class Catalina:
    def __init__(self, catalina_base, catalina_home=None, defines=()):
        self.catalina_base = os.path.abspath(str(catalina_base))
        self.catalina_home = os.path.abspath(str(catalina_home or catalina_base))
        self.defines = list(defines)
        self.server = None
        self.warnings = []
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
        log.info("Server stopped")

    def install_signal_handlers(self):
        import gevent

        def queue_shutdown(signum):
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
