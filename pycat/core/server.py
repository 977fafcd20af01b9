"""Server: the top of the tree, its Services and the shutdown port (Tomcat's StandardServer).

``await_shutdown()`` blocks the calling greenlet until a client sends the shutdown command on
the shutdown port (Tomcat reads characters until newline/EOF and compares) or until
``request_shutdown()`` is called (signal handlers only call that). ``port = -1`` disables the
shutdown port, as in Tomcat.

Every port is bound in ``init()``, before any Service starts (Tomcat binds its connectors at
init, ``bindOnInit``; pycat binds the shutdown port there too): a second server started on the
CATALINA_BASE of a live one fails on its first busy port without deploying an app, restoring
a session file or writing the deploy channel's token file -- nothing of the live server's base
is touched.
"""
import logging

import gevent
import gevent.event

from pycat.attrs import Attr
from pycat.errors import LifecycleError
from pycat.lifecycle import Lifecycle
from pycat.netutil import bind_failure, listen_tcp

log = logging.getLogger(__name__)


class Server(Lifecycle):
    port = Attr(int, 8005, "Shutdown port; -1 disables it")
    address = Attr(str, "localhost", "Address the shutdown port listens on")
    shutdown = Attr(str, "SHUTDOWN", "Command that stops the server")
    port_offset = Attr(int, 0, "Added to every port of this server (Tomcat 9.0.21+)")
    utility_threads = Attr(int, 2, "Kept for compatibility; gevent needs no utility pool")
    periodic_event_delay = Attr(int, 10, "Kept for compatibility")

    def __init__(self):
        super().__init__()
        self.services = []
        self.global_naming_resources = None
        self.catalina_base = None
        self.catalina_home = None
        self.shutdown_bound_port = None
        #: what ``pycat deploy`` / ``undeploy`` / ``list`` talk to (pycat.startup.manager_api's
        #: DeployChannel): made by the first Host deployer that starts under this Server, which
        #: holds it so that no module keeps it; the Hosts start and stop its listener
        self.deploy_channel = None
        self._shutdown_event = gevent.event.Event()
        self._listener = None

    # -- nested elements ---------------------------------------------------------------
    def add_service(self, service):
        service.server = self
        self.services.append(service)
        if self.state.available:
            service.start()

    def find_service(self, name):
        for service in self.services:
            if service.name == name:
                return service
        return None

    def set_global_naming_resources(self, resources):
        self.global_naming_resources = resources

    # -- lifecycle -----------------------------------------------------------------------
    def _init(self):
        # the ports first (see the module doc); a failure here fails start() before anything ran
        for service in self.services:
            service.init()
            for connector in service.connectors:
                init = getattr(connector, "init", None)     # a duck-typed connector may have none
                if init is not None:
                    init()
        if self.port != -1:
            self._bind_shutdown_port()

    def _start(self):
        self._shutdown_event.clear()
        resources = self.global_naming_resources
        if resources is not None:
            log.info("GlobalNamingResources: %d Resource(s) %s, %d Environment(s); pycat has no JNDI: "
                     "a UserDatabase Resource's pathname is the users file of UserDatabaseRealm "
                     "(resourceName), the other entries are kept as parsed (server.global_naming_resources) "
                     "and used by nothing", len(resources.resources),
                     sorted(r.name or "?" for r in resources.resources), len(resources.environments))
        for service in self.services:
            service.start()
        if self.port != -1:
            if self._listener is None:       # started again after a stop()
                self._bind_shutdown_port()
            self.spawn(self._accept_loop, self._listener)

    def _stop(self):
        self._close_shutdown_port()
        for service in reversed(self.services):
            try:
                service.stop()
            except Exception:
                log.exception("stopping %s failed", service.component_name)
        self._shutdown_event.set()

    def _destroy(self):
        self._close_shutdown_port()          # bound by init() of a server that never started
        for service in self.services:
            service.destroy()

    # -- shutdown ------------------------------------------------------------------------
    def _bind_shutdown_port(self):
        port = self.port + self.port_offset if self.port > 0 else self.port
        host = self.address or "localhost"
        try:
            sock = listen_tcp((host, port), 1)
        except OSError as exc:
            raise LifecycleError("Server shutdown port: %s: %s:%d" % (bind_failure(exc), host, port)) from None
        self._listener = sock
        self.shutdown_bound_port = sock.getsockname()[1]
        log.info("Shutdown port listening on %s:%d", host, self.shutdown_bound_port)

    def _close_shutdown_port(self):
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _accept_loop(self, sock):
        while True:
            try:
                conn, addr = sock.accept()
            except OSError:
                return
            self.spawn(self._read_command, conn, addr)

    def _read_command(self, conn, addr):
        expected = self.shutdown.encode("utf-8")
        data = b""
        try:
            conn.settimeout(10)
            # read until newline/EOF or enough bytes; a slow or random client gets nowhere
            while len(data) < len(expected) + 1024:
                chunk = conn.recv(1024)
                if not chunk:
                    break
                data += chunk
                if b"\n" in chunk or b"\r" in chunk or data == expected:
                    break
        except OSError:
            pass
        finally:
            conn.close()
        command = data.strip(b"\r\n\x00")
        if command == expected:
            log.info("Shutdown command received from %s", addr[0])
            self.request_shutdown()
        else:
            log.warning("Invalid command %r received on the shutdown port from %s", command[:40], addr[0])

    def request_shutdown(self):
        """Safe from signal handlers: only sets an event."""
        self._shutdown_event.set()

    def await_shutdown(self, timeout=None):
        """Block (cooperatively) until shutdown is requested. True if it was."""
        return self._shutdown_event.wait(timeout)
