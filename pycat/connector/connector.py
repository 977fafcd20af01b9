"""Connector: an HTTP/1.1 listener feeding the Service's Engine (Tomcat's Connector).

It owns a ``gevent.pywsgi`` server (see handler.py for what we change in it), a
``gevent.pool.Pool`` of connection greenlets bounded by ``maxConnections``, and a semaphore of
request workers sized by ``maxThreads`` (or, with ``executor="name"``, the Executor's semaphore,
shared by every connector naming it). That mirrors Tomcat's NIO connector: an idle keep-alive
or slow connection holds a greenlet (cheap) but no worker, so a few hundred idle clients cannot
lock everybody else out; ``maxThreads`` bounds the requests being processed at once.
``acceptCount`` is the listen backlog. TLS: ``SSLEnabled="true"`` plus nested
<SSLHostConfig>/<Certificate> PEM files (ssl.py); several host configs select by SNI.

With ``protocol="AJP/1.3"`` (or Tomcat's Ajp*Protocol class names) the same Connector speaks AJP
to a web server in front (ajp.py over the pure ajp_packet.py), through the same Adapter into the
Engine. As Tomcat 9.0.31+: it listens on the loopback address unless ``address`` says otherwise,
and with ``secretRequired="true"`` (the default) and no ``secret`` it refuses to start (an error
in the log; the other connectors serve), so a stock server.xml whose AJP connector has no secret
still starts, without an open AJP port.
"""
import itertools
import logging
import re
import socket

import gevent
import gevent.lock
import gevent.pool

from pycat.attrs import Attr
from pycat.errors import ConfigError, LifecycleError
from pycat.lifecycle import Lifecycle
from pycat.netutil import bind_failure, listen_tcp
from pycat.connector import ajp_packet
from pycat.connector.adapter import Adapter
from pycat.connector.ajp import AjpAdapter, AjpServer
from pycat.connector.handler import PycatWSGIServer
from pycat.connector.ssl import attribute_hint as tls_attribute_hint, set_connector_attribute

log = logging.getLogger(__name__)

HTTP_PROTOCOLS = {
    "HTTP/1.1", "org.apache.coyote.http11.Http11NioProtocol", "org.apache.coyote.http11.Http11Nio2Protocol",
    "org.apache.coyote.http11.Http11AprProtocol", "org.apache.coyote.http11.Http11Protocol",
}
AJP_PROTOCOLS = {"AJP/1.3", "org.apache.coyote.ajp.AjpNioProtocol", "org.apache.coyote.ajp.AjpNio2Protocol",
                 "org.apache.coyote.ajp.AjpAprProtocol", "org.apache.coyote.ajp.AjpProtocol"}

# Tomcat protocol-handler properties we accept and do not need (set_property → True, logged at debug)
IGNORED_PROPERTIES = {
    "socket.appReadBufSize", "socket.appWriteBufSize", "socket.rxBufSize", "socket.txBufSize",
    "socket.soKeepAlive", "socket.soReuseAddress", "socket.soLingerOn", "socket.soLingerTime",
    "socket.soTimeout", "socket.performanceConnectionTime", "socket.performanceLatency",
    "socket.performanceBandwidth", "socket.processorCache", "socket.bufferPool", "socket.bufferPoolSize",
    "socket.directBuffer", "selectorTimeout", "pollerThreadCount", "pollerThreadPriority",
    "acceptorThreadCount", "acceptorThreadPriority", "useSendfile", "processorCache", "threadPriority",
    "useAsyncIO", "bindOnInit", "maxExtensionSize", "maxTrailerSize",
    "restrictedUserAgents", "noCompressionUserAgents", "noCompressionStrongETag",
    # TLS attributes are not here: ssl.set_connector_attribute applies them or refuses them with a reason
    "sslImplementationName", "defaultSSLHostConfigName",
    "allowHostHeaderMismatch", "continueResponseTiming", "rejectIllegalHeader", "relaxedPathChars",
    "relaxedQueryChars", "maxCookieCount", "asyncTimeout", "maxSwallowSize", "discardFacades",
    "xpoweredBy", "enforceEncodingInGetWriter", "useIPVHosts", "parseBodyMethods",
    "allowTrace", "encodedSolidusHandling", "ajpFlush", "clientCertProvider",
}


def _connection_greenlets(prefix):
    """A Greenlet class whose instances are named <prefix>-1, -2, ... (as Tomcat names its worker
    threads http-nio-8080-exec-N), so a log line written while serving a request says which
    connector and connection it came from (startup.catalina puts the name in the log record)."""
    counter = itertools.count(1)

    class ConnectionGreenlet(gevent.Greenlet):
        def __init__(self, *args, **kwargs):
            gevent.Greenlet.__init__(self, *args, **kwargs)
            self.name = "%s-%d" % (prefix, next(counter))

    return ConnectionGreenlet


def _ms(value):
    """Tomcat's timeouts are milliseconds; -1 (or 0) means none."""
    return None if value is None or value <= 0 else value / 1000.0


class Connector(Lifecycle):
    port = Attr(int, 8080, "TCP port; 0 picks a free one (see bound_port)")
    address = Attr(str, None, "Address to bind (default: all; for AJP the loopback address, as Tomcat 9.0.31+)")
    protocol = Attr(str, "HTTP/1.1", "HTTP/1.1 or AJP/1.3 (or Tomcat's Http11*Protocol / Ajp*Protocol class names)")
    scheme = Attr(str, "http", "Scheme reported to apps")
    secure = Attr(bool, False, "request.secure for apps")
    ssl_enabled = Attr(bool, False, "Serve TLS", xml="SSLEnabled")
    connection_timeout = Attr(int, 60000, "ms to wait for request bytes (and idle)")
    keep_alive_timeout = Attr(int, None, "ms to wait for the next request (default connectionTimeout)")
    max_keep_alive_requests = Attr(int, 100, "Requests per connection; -1 unlimited, 1 disables keep-alive")
    max_threads = Attr(int, 200, "Requests processed at once (worker semaphore)")
    min_spare_threads = Attr(int, 10, "Kept for compatibility")
    max_connections = Attr(int, 8192, "Open connections (greenlet pool size); -1 unbounded")
    accept_count = Attr(int, 100, "Listen backlog")
    max_http_header_size = Attr(int, 8192, "Bytes of request line + headers; more → 431")
    max_http_request_header_size = Attr(int, None, "Tomcat 10.1 name of maxHttpHeaderSize")
    max_header_count = Attr(int, 100, "Request headers accepted; more → 400; -1 unlimited")
    max_post_size = Attr(int, 2097152, "Max bytes of a form body parsed into parameters; -1 unlimited")
    max_save_post_size = Attr(int, 4096, "Max bytes of a POST body kept during FORM authentication and "
                                         "replayed after the login (larger: 403); 0 keeps none, -1 unlimited")
    max_parameter_count = Attr(int, 10000, "Parameters parsed per request (query + form); -1 unlimited")
    redirect_port = Attr(int, 443, "Port used for confidential redirects")
    uri_encoding = Attr(str, "UTF-8", "Charset of %-decoded URIs", xml="URIEncoding")
    use_body_encoding_for_uri = Attr(bool, False, "Kept", xml="useBodyEncodingForURI")
    enable_lookups = Attr(bool, False, "Reverse-resolve remote hosts for request.remote_host")
    executor = Attr(str, None, "Name of a Service <Executor> whose maxThreads sizes the workers")
    proxy_name = Attr(str, None, "Server name reported to apps")
    proxy_port = Attr(int, 0, "Server port reported to apps")
    server = Attr(str, None, "Server response header (none by default)")
    tcp_no_delay = Attr(bool, True, "TCP_NODELAY on accepted sockets (keep it on: see handler.py)")
    compression = Attr(str, "off", "Kept (compression is not implemented)")
    compression_min_size = Attr(int, 2048, "Kept")
    compressible_mime_type = Attr(str, None, "Kept")
    connection_upload_timeout = Attr(int, 300000, "Kept")
    disable_upload_timeout = Attr(bool, True, "Kept")
    stop_timeout = Attr(float, 5.0, "Seconds stop() waits for requests in progress")
    # AJP only (Tomcat's AbstractAjpProtocol)
    secret_required = Attr(bool, True, "AJP: refuse to start without a secret (Ghostcat, CVE-2020-1938)")
    secret = Attr(str, None, "AJP: the secret every request must carry (httpd: secret= / worker.X.secret)",
                  aliases=("requiredSecret",))
    allowed_request_attributes_pattern = Attr(str, None, "AJP: regular expression (matched whole) of the "
                                              "request attributes accepted beyond the protocol's own; "
                                              "others are answered 403")
    packet_size = Attr(int, ajp_packet.DEFAULT_PACKET_SIZE, "AJP: largest packet in bytes (8192..65536; "
                       "httpd's max_packet_size / ProxyIOBufferSize must match)")
    tomcat_authentication = Attr(bool, True, "AJP: false takes the user httpd authenticated as remote_user")
    tomcat_authorization = Attr(bool, False, "AJP: kept (pycat has no remote-user authorization step)")

    def __init__(self):
        super().__init__()
        self.service = None
        self.ssl_host_configs = []
        self.upgrade_protocols = []
        self.properties = {}
        self.bound_port = None
        self.pool = None
        self.workers = None
        self.wsgi_server = None
        self.adapter = None
        self.socket_hook = None   # test hook: called with each accepted socket
        self._bound_socket = None  # bound by init(), until the started server owns it

    # -- nested elements -----------------------------------------------------------------
    def add_ssl_host_config(self, config):
        self.ssl_host_configs.append(config)

    def add_upgrade_protocol(self, protocol):
        self.upgrade_protocols.append(protocol)
        log.warning("Connector: <UpgradeProtocol %s> is kept but not supported (HTTP/1.1 only)",
                    getattr(protocol, "class_name", type(protocol).__name__))

    def set_property(self, name, value):
        """Tomcat's generic fallback: legacy TLS attributes (applied to the default SSLHostConfig,
        or refused with a reason: ssl.py), known handler properties."""
        taken = set_connector_attribute(self, name, value)
        if taken is not None:
            return taken
        if name in IGNORED_PROPERTIES or name.startswith("socket."):
            self.properties[name] = value
            log.debug("Connector: property %s=%s accepted and not used", name, value)
            return True
        return False

    @staticmethod
    def attribute_hint(name):
        """Why the digester could not set ``name`` (a TLS attribute pycat does not implement)."""
        return tls_attribute_hint(name)

    # -- derived settings ----------------------------------------------------------------
    @property
    def is_ajp(self):
        return self.protocol in AJP_PROTOCOLS

    def find_executor(self):
        if not self.executor:
            return None
        service_executor = self.service.find_executor(self.executor) if self.service else None
        if service_executor is None:
            raise ConfigError("Connector executor=%r names no <Executor> of the Service" % self.executor)
        return service_executor

    def worker_count(self):
        """Requests processed at once: the Executor's maxThreads (shared), else maxThreads."""
        executor = self.find_executor()
        return executor.pool_size() if executor is not None else max(1, self.max_threads)

    def connection_limit(self):
        """Open connections at once (None: unbounded)."""
        return self.max_connections if self.max_connections and self.max_connections > 0 else None

    def header_limit(self):
        return self.max_http_request_header_size or self.max_http_header_size

    def _ssl_context(self):
        if not self.ssl_enabled:
            return None
        if not self.ssl_host_configs:
            raise ConfigError("Connector port %d: SSLEnabled=\"true\" needs an <SSLHostConfig>" % self.port)
        server = self.service.server if self.service is not None else None
        base = getattr(server, "catalina_base", None)
        contexts = {c.host_name.lower(): c.create_context(base) for c in self.ssl_host_configs}
        default = contexts.get("_default_") or next(iter(contexts.values()))
        if len(contexts) > 1:
            def pick(ssl_sock, server_name, _ctx):
                chosen = contexts.get((server_name or "").lower())
                if chosen is not None:
                    ssl_sock.context = chosen
            default.sni_callback = pick
        return default

    # -- lifecycle -----------------------------------------------------------------------
    def ajp_refusal(self):
        """Why this AJP connector must not start (Tomcat's AbstractAjpProtocol.start), or None."""
        if self.secret_required and not self.secret:
            return ('The AJP Connector is configured with secretRequired="true" but the secret '
                    'attribute is either null or "". This combination is not valid.')
        return None

    def _init(self):
        # Tomcat's bindOnInit: the port is taken at init, so a port in use fails the Server's
        # init before any app of the node is deployed (pycat.core.server)
        if self.is_ajp:
            ajp_packet.check_packet_size(self.packet_size)
            if self.allowed_request_attributes_pattern:
                try:
                    re.compile(self.allowed_request_attributes_pattern)
                except re.error as exc:
                    raise ConfigError("Connector allowedRequestAttributesPattern %r: %s"
                                      % (self.allowed_request_attributes_pattern, exc)) from None
            if self.ajp_refusal() is None:
                self._bound_socket = self._bind()
        elif self.protocol in HTTP_PROTOCOLS:
            self._bound_socket = self._bind()

    def _close_bound_socket(self):
        sock, self._bound_socket = self._bound_socket, None
        if sock is not None:
            sock.close()

    def _start(self):
        if self.is_ajp:
            refusal = self.ajp_refusal()
            if refusal is not None:
                # Tomcat fails this connector and serves on the others
                log.error("Failed to start Connector[AJP/1.3-%d]: %s Not listening.", self.port, refusal)
                return
        elif self.protocol not in HTTP_PROTOCOLS:
            raise ConfigError("Connector protocol %r is not supported (use HTTP/1.1 or AJP/1.3)" % self.protocol)
        engine = self.service.container if self.service is not None else None
        if engine is None:
            raise LifecycleError("Connector port %d has no Service with an Engine" % self.port)
        if self.is_ajp:
            self._start_ajp(engine)
            return
        ssl_context = self._ssl_context()
        if ssl_context is not None and "scheme" not in self.__dict__:
            # a TLS connector reports https unless told otherwise
            self.scheme, self.secure = "https", True
        if self._bound_socket is None:          # started again after a stop()
            self._bound_socket = self._bind()
        listener = self._bound_socket
        self._workers_and_pool("https" if ssl_context is not None else "http")
        self.adapter = Adapter(self, engine)
        kwargs = {}
        if ssl_context is not None:
            kwargs = {"ssl_context": ssl_context}
        server = PycatWSGIServer(listener, application=self.adapter, spawn=self.pool, log=None,
                                 error_log=logging.getLogger("pycat.connector.pywsgi"), **kwargs)
        server.connection_timeout = _ms(self.connection_timeout)
        kat = self.keep_alive_timeout
        server.keep_alive_timeout = server.connection_timeout if kat is None else _ms(kat)
        server.max_keep_alive_requests = self.max_keep_alive_requests
        server.max_header_size = self.header_limit()
        server.max_header_count = self.max_header_count
        server.socket_hook = self.socket_hook
        server.set_environ({"SERVER_NAME": self.proxy_name or self.address or "localhost",
                            "SERVER_PORT": str(self.bound_port),
                            "SERVER_SOFTWARE": "pycat"})
        server.start()
        self.wsgi_server = server
        self._bound_socket = None                # closed by server.close() from now on
        log.info("Starting ProtocolHandler [\"http%s-%s\"] on %s:%d (%d workers, %s connections)",
                 "s" if ssl_context else "", self.bound_port, self.address or "0.0.0.0",
                 self.bound_port, self.worker_count(), self.connection_limit() or "unbounded")

    def _workers_and_pool(self, name):
        executor = self.find_executor()
        if executor is not None:
            executor.start()                      # normally already started by the Service
            self.workers = executor.workers       # shared with every connector naming it
        else:
            self.workers = gevent.lock.BoundedSemaphore(self.worker_count())
        self.pool = gevent.pool.Pool(self.connection_limit(), greenlet_class=_connection_greenlets(
            "%s-%d-exec" % (name, self.bound_port)))

    def _start_ajp(self, engine):
        if self._bound_socket is None:          # started again after a stop()
            self._bound_socket = self._bind()
        listener = self._bound_socket
        self._workers_and_pool("ajp")
        self.adapter = AjpAdapter(self, engine)
        # Tomcat's AJP defaults: no timeout unless connectionTimeout is set (httpd pools its
        # connections and expects them to stay); keepAliveTimeout follows connectionTimeout
        timeout = _ms(self.connection_timeout) if "connection_timeout" in self.__dict__ else None
        kat = self.keep_alive_timeout
        pattern = self.allowed_request_attributes_pattern
        server = AjpServer(listener, self, self.adapter, self.pool, timeout,
                           timeout if kat is None else _ms(kat), re.compile(pattern) if pattern else None)
        server.start()
        self.wsgi_server = server
        self._bound_socket = None
        log.info("Starting ProtocolHandler [\"ajp-%s\"] on %s:%d (%d workers, %s connections, packetSize %d)",
                 self.bound_port, self.bind_address(), self.bound_port, self.worker_count(),
                 self.connection_limit() or "unbounded", self.packet_size)

    def bind_address(self):
        if self.address:
            return self.address
        return "127.0.0.1" if self.is_ajp else "0.0.0.0"

    def _bind(self):
        host = self.bind_address()
        port = self.port
        server = self.service.server if self.service is not None else None
        if server is not None and port > 0:
            port += getattr(server, "port_offset", 0) or 0
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise LifecycleError("Connector: cannot resolve address %s: %s" % (host, exc)) from None
        family, _, _, _, sockaddr = infos[0]
        try:
            sock = listen_tcp(sockaddr, max(1, self.accept_count), family)
        except OSError as exc:
            raise LifecycleError("%s: %s:%d" % (bind_failure(exc), host, port)) from None
        sock.setblocking(False)
        self.bound_port = sock.getsockname()[1]
        return sock

    def _stop(self):
        self._close_bound_socket()               # a start that failed after init() bound it
        server, self.wsgi_server = self.wsgi_server, None
        if server is None:
            return
        server.close()           # stop accepting first
        server.kill_idle()       # idle keep-alive connections need not hold up the stop
        if self.pool is not None:
            self.pool.join(timeout=self.stop_timeout)
            self.pool.kill(block=True, timeout=1)
        if self.adapter is not None:
            self.adapter = None
        log.info("Stopped ProtocolHandler on port %s", self.bound_port)

    def _destroy(self):
        self._close_bound_socket()               # init() bound it and the server never started
