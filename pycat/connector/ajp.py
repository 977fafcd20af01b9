"""The AJP/1.3 connector's socket side (Tomcat's AjpNioProtocol): a thin adapter between
``ajp_packet`` (the format, pure) and the HTTP connector's ``Adapter`` (the one way into the Engine).

One greenlet per connection, from the Connector's pool (``maxConnections``), reads packets with
``ajp_packet.PacketDecoder`` and serves them in order:

* CPING is answered with CPONG at once (httpd probes a pooled connection with it);
* FORWARD_REQUEST becomes a WSGI environ (method, URI, query, headers, remote address and host,
  server name and port, the forwarded SSL data) and goes through ``AjpAdapter``, the HTTP
  ``Adapter`` with one difference: the Request it builds takes scheme, remote user and the
  forwarded attributes from the AJP message instead of from the connector. The response goes back
  as SEND_HEADERS, SEND_BODY_CHUNK packets and END_RESPONSE; a buffered response leaves in one
  send;
* the body is pulled packet by packet as the app reads ``wsgi.input`` (the first packet arrives
  unasked when a Content-Length was declared; the others answer our GET_BODY_CHUNK), so at most
  one packet of it is held;
* SHUTDOWN is refused (logged, connection closed): a web server does not stop the container.

A request without the right secret, or carrying a request attribute the pattern does not allow,
is answered 403, logged and access-logged, and the connection closes (Tomcat's Ghostcat fix). A
malformed packet (``AjpError``), or a packet the protocol does not allow at that point, closes the
connection with one log line; nothing a peer sends reaches beyond its own connection.
"""
import logging
import sys
import time

import gevent.socket as socket
from gevent import getcurrent, sleep
from gevent.server import StreamServer

from pycat.connector import ajp_packet as ajp
from pycat.connector.adapter import Adapter
from pycat.connector.handler import access_log_valves, log_access
from pycat.connector.request import BadRequest, Request
from pycat.connector.response import Response

log = logging.getLogger(__name__)

_READ_SIZE = 65536

# what the request attributes of a forwarded TLS connection are called (Servlet names, as Tomcat)
CIPHER_SUITE = "jakarta.servlet.request.cipher_suite"
KEY_SIZE = "jakarta.servlet.request.key_size"
SSL_SESSION = "jakarta.servlet.request.ssl_session_id"
CERTIFICATE = "jakarta.servlet.request.X509Certificate"
SECURE_PROTOCOL = "jakarta.servlet.request.secure_protocol"
ROUTE = "pycat.ajp.route"          # the worker name / route httpd chose (mod_jk sends it)
_JAVAX_TO_JAKARTA = {
    "javax.servlet.request.cipher_suite": CIPHER_SUITE,
    "javax.servlet.request.key_size": KEY_SIZE,
    "javax.servlet.request.ssl_session": SSL_SESSION,
    "jakarta.servlet.request.ssl_session": SSL_SESSION,
    "javax.servlet.request.X509Certificate": CERTIFICATE,
}


class ProtocolError(Exception):
    """The peer broke the protocol in a way that ends the connection (not a malformed packet)."""


class AjpAdapter(Adapter):
    """The HTTP Adapter; only the Request differs: its client view comes from the AJP message."""

    def make_request(self, environ, now, mapping=None):
        fwd = environ["pycat.ajp"]
        request = Request(environ, self.connector, now, "https" if fwd.is_ssl else self.scheme,
                          True if fwd.is_ssl else self.secure, mapping)
        # the web server forwards the client's host name apart from its address
        request.remote_host = environ.get("REMOTE_HOST") or request.remote_addr
        attrs = request.attributes
        forwarded = fwd.attributes
        if not self.connector.tomcat_authentication:
            # the web server authenticated the user (tomcatAuthentication="false")
            request.remote_user = forwarded.get("remote_user") or None
            if forwarded.get("auth_type"):
                attrs["pycat.auth.type"] = forwarded["auth_type"]
        if fwd.is_ssl:
            for key, name in (("ssl_cipher", CIPHER_SUITE), ("ssl_session", SSL_SESSION),
                              ("ssl_key_size", KEY_SIZE), ("ssl_cert", CERTIFICATE)):
                value = forwarded.get(key)
                if value is not None and value != "":
                    attrs[name] = value
        if forwarded.get("route"):
            attrs[ROUTE] = forwarded["route"]
        for name, value in fwd.request_attributes:
            if name == ajp.AJP_SSL_PROTOCOL:
                attrs[SECURE_PROTOCOL] = value
            elif name not in (ajp.AJP_LOCAL_ADDR, ajp.AJP_REMOTE_PORT):   # in the environ already
                attrs[_JAVAX_TO_JAKARTA.get(name, name)] = value
        return request


class AjpInput:
    """``wsgi.input`` over the body packets of one request (see the module doc)."""

    __slots__ = ("conn", "length", "received", "first", "eof", "chunk", "pos")

    def __init__(self, conn, length):
        self.conn = conn
        self.length = length           # declared Content-Length, -1 when none (chunked)
        self.received = 0
        self.first = True
        self.eof = length == 0
        self.chunk = b""
        self.pos = 0

    def _fill(self):
        """Next body packet into self.chunk; False at the end of the body."""
        if self.eof:
            return False
        conn = self.conn
        if self.first and self.length > 0:
            pass                       # the web server sends the first packet unasked
        else:
            conn.sendall(conn.get_body_message)
        self.first = False
        try:
            payload = conn.read_packet()
            if payload is None:
                raise ajp.AjpError("connection closed inside the request body")
            data = ajp.parse_body_chunk(payload)
        except ajp.AjpError as exc:
            conn.fail(exc)
            raise BadRequest("malformed AJP body packet: %s" % exc) from None
        if not data:
            self.eof = True
            return False
        self.received += len(data)
        if self.length >= 0:
            if self.received > self.length:
                exc = ajp.AjpError("%d body bytes, more than the declared %d" % (self.received, self.length))
                conn.fail(exc)
                raise BadRequest(str(exc))
            if self.received == self.length:
                self.eof = True        # all declared bytes: asking again would only fetch the empty packet
        self.chunk = data
        self.pos = 0
        return True

    def read(self, size=-1):
        out = []
        want = size if size is not None and size >= 0 else None
        while want is None or want > 0:
            if self.pos >= len(self.chunk) and not self._fill():
                break
            end = len(self.chunk) if want is None else min(len(self.chunk), self.pos + want)
            piece = self.chunk[self.pos:end]
            self.pos = end
            out.append(piece)
            if want is not None:
                want -= len(piece)
        return b"".join(out)

    def readline(self, size=-1):
        out = []
        got = 0
        while size is None or size < 0 or got < size:
            if self.pos >= len(self.chunk) and not self._fill():
                break
            end = len(self.chunk)
            if size is not None and size >= 0:
                end = min(end, self.pos + size - got)
            nl = self.chunk.find(b"\n", self.pos, end)
            if nl >= 0:
                end = nl + 1
            piece = self.chunk[self.pos:end]
            self.pos = end
            out.append(piece)
            got += len(piece)
            if nl >= 0:
                break
        return b"".join(out)

    def readlines(self, hint=None):
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")

    def unread_first_packet(self):
        """After the response: whether the packet the web server sent unasked is still unread (it
        must be swallowed before the next request's first packet)."""
        return self.first and self.length > 0


class AjpConnection:
    """One connection from the web server; serves its requests one after another."""

    def __init__(self, server, sock, address):
        self.server = server
        self.socket = sock
        self.address = address
        self.decoder = ajp.PacketDecoder(server.packet_size)
        self.packets = []
        self.close_connection = False
        self.failure = None
        self.get_body_message = server.get_body_message
        # per request
        self.head = None
        self.headers_sent = False
        self.status = None

    # -- I/O ----------------------------------------------------------------------------------------
    def read_packet(self):
        """The next payload, or None when the peer closed cleanly between packets."""
        packets = self.packets
        while not packets:
            data = self.socket.recv(_READ_SIZE)
            if not data:
                if self.decoder.pending:
                    raise ajp.AjpError("connection closed inside a packet")
                return None
            # at most one read's worth of packets is ever queued: nothing is read until they are used
            packets.extend(self.decoder.feed(data))
        return packets.pop(0)

    def sendall(self, data):
        self.socket.sendall(data)

    def fail(self, exc):
        """A protocol error found while the app runs: the connection ends after this request."""
        self.failure = exc
        self.close_connection = True

    # -- the loop -----------------------------------------------------------------------------------
    def handle(self):
        server = self.server
        sock = self.socket
        me = getcurrent()
        served = 0
        try:
            while not self.close_connection:
                if served:
                    sleep(0)        # the next request may be buffered already: let others run first
                    sock.settimeout(server.keep_alive_timeout)
                server.idle.add(me)
                try:
                    payload = self.read_packet()
                finally:
                    server.idle.discard(me)
                if payload is None:
                    break
                sock.settimeout(server.connection_timeout)
                kind = payload[0] if payload else None
                if kind == ajp.CPING and len(payload) == 1:
                    self.sendall(ajp.CPONG_PACKET)
                elif kind == ajp.FORWARD_REQUEST:
                    served += 1
                    self.serve(ajp.parse_forward_request(payload, server.max_header_count))
                elif kind == ajp.SHUTDOWN:
                    log.warning("AJP SHUTDOWN from %s refused; connection closed", self.peer())
                    break
                else:
                    raise ajp.AjpError("unexpected packet type %s between requests" % kind)
            if self.failure is not None:
                log.warning("AJP connection from %s closed: %s", self.peer(), self.failure)
        except ajp.AjpError as exc:
            log.warning("AJP connection from %s closed: malformed packet: %s", self.peer(), exc)
        except OSError as exc:
            # a timeout (connectionTimeout / keepAliveTimeout) or a reset: just close, as Tomcat
            log.debug("AJP connection from %s closed: %s", self.peer(), exc)
        except Exception:
            # our own bug must cost one connection, never the server
            log.exception("AJP connection from %s failed", self.peer())
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def peer(self):
        addr = self.address
        return "%s:%s" % addr[:2] if isinstance(addr, tuple) else str(addr)

    # -- one request --------------------------------------------------------------------------------
    def serve(self, fwd):
        server = self.server
        connector = server.connector
        length = fwd.content_length
        environ = self.environ(fwd, length)
        reason = ajp.refusal(fwd, connector.secret, connector.secret_required, server.attribute_pattern)
        if reason is not None:
            log.warning("AJP request %s %s from %s refused with 403: %s", fwd.method, fwd.uri[:200],
                        self.peer(), reason)
            self.close_connection = True
            self.refuse(environ, 403)
            return
        self.head = None
        self.headers_sent = False
        body_input = environ["wsgi.input"]
        body = server.adapter(environ, self.start_response)
        try:
            out = []
            if not self.headers_sent:
                if self.head is None:          # the app never answered: as pywsgi, a 500
                    self.start_response("500 Internal Server Error", [("Content-Length", "0")])
                out.append(self.head)
                self.headers_sent = True
            data = b"".join(body)
            if data:
                out.append(ajp.body_chunks(data, server.packet_size))
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        if body_input.unread_first_packet() and not self.close_connection:
            try:
                payload = self.read_packet()
                if payload is None:
                    raise ajp.AjpError("connection closed inside the request body")
                ajp.parse_body_chunk(payload)
            except ajp.AjpError as exc:
                self.fail(exc)
        out.append(ajp.end_response(not self.close_connection))
        self.sendall(b"".join(out))

    def start_response(self, status, headers, exc_info=None):
        if exc_info:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        code, _, reason = status.partition(" ")
        # encoded now, so a header a client must not see (CR/LF) raises here, as pywsgi's does
        self.head = ajp.send_headers(int(code), reason, [(str(n), str(v)) for n, v in headers],
                                     self.server.packet_size)
        self.status = int(code)
        return self.write

    def write(self, data):
        if not data:
            return
        packets = ajp.body_chunks(data, self.server.packet_size)
        if not self.headers_sent:
            self.headers_sent = True
            packets = self.head + packets
        self.sendall(packets)

    def environ(self, fwd, length):
        server = self.server
        env = dict(server.base_environ)
        uri = fwd.uri
        query = fwd.attributes.get("query_string") or ""
        env["REQUEST_METHOD"] = fwd.method
        env["SERVER_PROTOCOL"] = fwd.protocol
        env["RAW_URI"] = uri + "?" + query if query else uri
        env["pycat.raw_path"] = uri
        env["PATH_INFO"] = uri
        env["QUERY_STRING"] = query
        env["REMOTE_ADDR"] = fwd.remote_addr
        if fwd.remote_host:
            env["REMOTE_HOST"] = fwd.remote_host
        env["SERVER_NAME"] = fwd.server_name or "localhost"
        env["SERVER_PORT"] = str(fwd.server_port)
        env["wsgi.url_scheme"] = "https" if fwd.is_ssl else server.connector.scheme
        addr = self.address
        if isinstance(addr, tuple):
            env["pycat.peer_addr"] = addr[0]
        for name, value in fwd.request_attributes:
            if name == ajp.AJP_REMOTE_PORT and value.isdigit():
                env["REMOTE_PORT"] = value
            elif name == ajp.AJP_LOCAL_ADDR:
                env["pycat.local_addr"] = value
        for name, value in fwd.headers:
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
                env[key] = value
                continue
            if "_" in name:
                continue       # as the HTTP connector: X_Foo could pass for X-Foo
            key = "HTTP_" + key
            if key in env:
                env[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
            else:
                env[key] = value
        env["wsgi.input"] = AjpInput(self, length)
        env["wsgi.input_terminated"] = True
        env["pycat.handler"] = self
        env["pycat.ajp"] = fwd
        return env

    def refuse(self, environ, status):
        """Answer ``status`` without entering the pipeline, access-logged (Tomcat's adapter.log)."""
        adapter = self.server.adapter
        try:
            request = adapter.make_request(environ, time.time())
            response = Response(request)
            response.status = status
            log_access(access_log_valves(adapter.engine), request, response)
        except Exception:
            log.exception("Access logging of an AJP %d answer failed", status)
        self.sendall(ajp.send_headers(status, None, [("Content-Length", "0")], self.server.packet_size)
                     + ajp.END_AND_CLOSE)


class AjpServer(StreamServer):
    """The listening side: one AjpConnection per accepted socket, in the Connector's pool."""

    def __init__(self, listener, connector, adapter, spawn, connection_timeout, keep_alive_timeout,
                 attribute_pattern):
        StreamServer.__init__(self, listener, spawn=spawn)
        self.connector = connector
        self.adapter = adapter
        self.packet_size = connector.packet_size
        self.get_body_message = ajp.get_body_chunk(self.packet_size)
        self.connection_timeout = connection_timeout
        self.keep_alive_timeout = keep_alive_timeout
        self.max_header_count = connector.max_header_count
        self.attribute_pattern = attribute_pattern
        self.socket_hook = connector.socket_hook
        self.idle = set()
        self.base_environ = {
            "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_SOFTWARE": "pycat", "SCRIPT_NAME": "",
            "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": False,
            "wsgi.run_once": False, "wsgi.errors": sys.stderr,
        }

    def handle(self, sock, address):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        sock.settimeout(self.keep_alive_timeout)
        if self.socket_hook is not None:
            self.socket_hook(sock)
        AjpConnection(self, sock, address).handle()

    def kill_idle(self):
        for g in list(self.idle):
            g.kill(block=False)
