"""gevent.pywsgi glue: the per-connection handler and the server used by the Connector.

What we change in pywsgi, and why:

* TCP_NODELAY on every accepted socket, and status line + headers + a small body go out in
  ONE send. Stock pywsgi writes headers and body separately; with Nagle on, the second write
  waits for the client's delayed ACK (~40 ms per keep-alive request).
* Request headers are read by us with a total budget of ``maxHttpHeaderSize`` bytes (request
  line included): too long a request line → 414, too many header bytes → 431, then the
  connection closes and the server goes on. As Tomcat, an HTTP/1.1 request without exactly one
  Host header, a malformed header line, or a Transfer-Encoding other than "chunked" → 400. Header lines are parsed into a small
  case-insensitive table (no email.parser), and the WSGI environ is built straight from it.
* ``connectionTimeout`` is the socket timeout; ``keepAliveTimeout`` applies while waiting for
  the next request on a kept-alive connection; ``maxKeepAliveRequests`` closes the connection
  (with ``Connection: close``) after that many requests.
* Greenlets waiting for a request line are tracked as *idle* so stop() can end them at once
  instead of waiting for idle keep-alive clients.
"""
import logging
import socket
import ssl

from gevent import getcurrent, sleep
from gevent.pywsgi import WSGIHandler, WSGIServer, Input, _InvalidClientRequest

log = logging.getLogger(__name__)

_RESPONSE_431 = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
                 b"Content-Type: text/plain\r\nContent-Length: 35\r\n\r\n"
                 b"Request header fields are too large")
_RESPONSE_414 = (b"HTTP/1.1 414 URI Too Long\r\nConnection: close\r\n"
                 b"Content-Type: text/plain\r\nContent-Length: 20\r\n\r\nRequest-URI too long")
_RESPONSE_400 = (b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                 b"Content-Type: text/plain\r\nContent-Length: 11\r\n\r\nBad Request")
_COMBINE_LIMIT = 65536


class HeaderTooLarge(ValueError):
    pass


class RequestLineTooLong(ValueError):
    pass


class Headers:
    """Parsed request headers: enough of http.client.HTTPMessage for pywsgi."""

    __slots__ = ("pairs", "_index")
    status = ""

    def __init__(self, pairs):
        self.pairs = pairs                    # [(name, value)] in order
        index = {}
        for name, value in pairs:
            key = name.lower()
            if key in index:
                index[key] = index[key] + (", " if key != "cookie" else "; ") + value
            else:
                index[key] = value
        self._index = index

    def get(self, name, default=None):
        return self._index.get(name.lower(), default)

    getheader = get

    def __contains__(self, name):
        return name.lower() in self._index

    def __delitem__(self, name):
        key = name.lower()
        self._index.pop(key, None)
        self.pairs = [p for p in self.pairs if p[0].lower() != key]

    @property
    def typeheader(self):
        return self._index.get("content-type")

    @property
    def headers(self):
        return ["%s: %s\r\n" % p for p in self.pairs]

    def items(self):
        return list(self.pairs)


_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse_header_lines(lines):
    """[b'Name: value\\r\\n', ...] → [(name, value)]; obs-fold continuation joined; bad names → ValueError."""
    pairs = []
    for raw in lines:
        line = raw.decode("latin-1").rstrip("\r\n")
        if line[:1] in (" ", "\t"):
            if not pairs:
                raise _InvalidClientRequest("header continuation without a header")
            name, value = pairs[-1]
            pairs[-1] = (name, value + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or not _TOKEN_CHARS.issuperset(name):
            raise _InvalidClientRequest("invalid header line %r" % line[:100])
        pairs.append((name, value.strip(" \t")))
    return pairs


class PycatHandler(WSGIHandler):
    requests_served = 0
    environ = None

    def handle(self):
        try:
            WSGIHandler.handle(self)
        finally:
            # environ["pycat.handler"] points back at us: break the cycle so a closed
            # connection is freed by reference counting, not by a (pausing) GC pass
            self.__dict__.pop("environ", None)
            self.__dict__.pop("headers", None)

    def read_requestline(self):
        server = self.server
        sock = self.socket
        if self.requests_served:
            # A keep-alive client's next request is often already buffered, so readline() would
            # not yield and this greenlet would serve its connection while all others wait (p99
            # of ~200 ms at 50 connections). Yield once per follow-up request: fair, and cheap.
            sleep(0)
        swap = self.requests_served and server.keep_alive_timeout != server.connection_timeout
        if swap:
            sock.settimeout(server.keep_alive_timeout)
        me = getcurrent()
        idle = server.idle
        idle.add(me)
        try:
            line = self.rfile.readline(server.max_header_size + 1)
        finally:
            idle.discard(me)
        if swap:
            sock.settimeout(server.connection_timeout)
        return line.decode("latin-1")

    def read_request(self, raw_requestline):
        server = self.server
        limit = server.max_header_size
        if len(raw_requestline) > limit:
            raise RequestLineTooLong()
        self.requestline = raw_requestline.rstrip()
        words = self.requestline.split()
        if len(words) != 3:
            raise _InvalidClientRequest("Invalid request line: %r" % (raw_requestline[:200],))
        self.command, self.path, self.request_version = words
        if not self._check_http_version():
            raise _InvalidClientRequest("Invalid http version: %r" % (raw_requestline[:200],))
        budget = limit - len(raw_requestline)
        readline = self.rfile.readline
        lines = []
        while True:
            line = readline(budget + 1)
            budget -= len(line)
            if budget < 0:
                raise HeaderTooLarge()
            if line == b"\r\n" or line == b"\n":
                break
            if not line:
                raise _InvalidClientRequest("connection closed inside the request headers")
            lines.append(line)
        headers = self.headers = Headers(parse_header_lines(lines))
        te = headers.get("transfer-encoding")
        if te is not None:
            if te.strip().lower() != "chunked":
                # anything but plain chunked (gzip, chunked; chunked, chunked...) invites smuggling
                raise _InvalidClientRequest("unsupported Transfer-Encoding: %r" % te[:100])
            if "content-length" in headers:
                # RFC 9112 6.3: a request smuggling attempt until proven otherwise; rejecting it (and
                # closing) is allowed and safer than guessing which length a proxy in front used
                raise _InvalidClientRequest("both Transfer-Encoding and Content-Length")
        content_length = headers.get("content-length")
        if content_length is not None:
            if not (content_length.isascii() and content_length.isdigit()):
                raise _InvalidClientRequest("Invalid Content-Length: %r" % (content_length,))
            content_length = int(content_length)
        self.content_length = content_length
        conn = headers.get("connection")
        tokens = {t.strip() for t in conn.lower().split(",")} if conn else ()
        if self.request_version == "HTTP/1.1":
            host = headers.get("host")
            if host is None or "," in host:
                raise _InvalidClientRequest("HTTP/1.1 request with %s Host header"
                                            % ("no" if host is None else "more than one"))
            self.close_connection = "close" in tokens
        else:
            self.close_connection = "keep-alive" not in tokens
        self.requests_served += 1
        max_keep_alive = server.max_keep_alive_requests
        if 0 < max_keep_alive <= self.requests_served:
            self.close_connection = True
        return True

    def get_environ(self):
        env = self.server.get_environ()
        env["REQUEST_METHOD"] = self.command
        path = self.path
        query = ""
        q = path.find("?")
        if q >= 0:
            path, query = path[:q], path[q + 1:]
        env["RAW_URI"] = self.path
        env["pycat.raw_path"] = path
        env["PATH_INFO"] = path
        env["QUERY_STRING"] = query
        env["SERVER_PROTOCOL"] = self.request_version
        addr = self.client_address
        if isinstance(addr, tuple):
            env["REMOTE_ADDR"] = addr[0]
            env["REMOTE_PORT"] = str(addr[1])
        headers = self.headers
        for name, value in headers.pairs:
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
                env[key] = value
                continue
            if "_" in name:
                continue   # pywsgi's rule: drop header names with underscores (spoofing HTTP_X vs X-)
            key = "HTTP_" + key
            if key in env:
                env[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
            else:
                env[key] = value
        if "content-length" not in headers:
            env.pop("CONTENT_LENGTH", None)
        sock = self.socket if env.get("HTTP_EXPECT") == "100-continue" else None
        chunked = (headers.get("transfer-encoding") or "").lower() == "chunked"
        self.wsgi_input = Input(self.rfile, self.content_length, socket=sock, chunked_input=chunked)
        env["wsgi.input"] = self.wsgi_input
        env["wsgi.input_terminated"] = True
        env["pycat.handler"] = self
        return env

    def finalize_headers(self):
        WSGIHandler.finalize_headers(self)
        if self.command == "HEAD":
            # a streamed HEAD response has no body, so no chunk framing either
            self.response_use_chunked = False
        if self.close_connection and self.request_version == "HTTP/1.1":
            for name, _ in self.response_headers:
                if name.lower() == b"connection":
                    break
            else:
                self.response_headers.append((b"Connection", b"close"))

    def _write_with_headers(self, data):
        self.headers_sent = True
        self.finalize_headers()
        towrite = bytearray(b"HTTP/1.1 ")
        towrite += self.status
        towrite += b"\r\n"
        for header, value in self.response_headers:
            towrite += header
            towrite += b": "
            towrite += value
            towrite += b"\r\n"
        towrite += b"\r\n"
        if data and not self.response_use_chunked and len(data) <= _COMBINE_LIMIT:
            # one send: headers and body leave together (see module doc)
            towrite += data
            self._sendall(towrite)
        else:
            self._sendall(towrite)
            self._write(data)

    def _handle_client_error(self, ex):
        if isinstance(ex, OSError):
            # timeout (connectionTimeout) or reset while reading the headers: just close, as Tomcat
            log.debug("Closing connection from %s: %s", self.client_address, ex)
            return None
        if isinstance(ex, HeaderTooLarge):
            log.info("Request from %s: headers larger than maxHttpHeaderSize (%d)",
                     self.client_address, self.server.max_header_size)
            return ("431", _RESPONSE_431)
        if isinstance(ex, RequestLineTooLong):
            log.info("Request from %s: request line longer than maxHttpHeaderSize", self.client_address)
            return ("414", _RESPONSE_414)
        log.info("Invalid request from %s: %s", self.client_address,
                 getattr(ex, "formatted_message", None) or str(ex) or type(ex).__name__)
        return ("400", _RESPONSE_400)

    def log_request(self):
        pass   # access logging is the AccessLogValve's job


class PycatWSGIServer(WSGIServer):
    handler_class = PycatHandler
    connection_timeout = 20.0
    keep_alive_timeout = 20.0
    max_keep_alive_requests = 100
    max_header_size = 8192
    socket_hook = None

    def __init__(self, *args, **kwargs):
        WSGIServer.__init__(self, *args, **kwargs)
        self.idle = set()

    def _prepare(self, sock):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        sock.settimeout(self.connection_timeout)
        hook = self.socket_hook
        if hook is not None:
            hook(sock)

    def handle(self, sock, address):
        if self.ssl_args is None:
            self._prepare(sock)
        self.handler_class(sock, address, self).handle()

    def wrap_socket_and_handle(self, client_socket, address):
        # timeout and NODELAY before the handshake, so a silent TLS client cannot hold a greenlet forever
        self._prepare(client_socket)
        try:
            ssl_socket = self.wrap_socket(client_socket, **self.ssl_args)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", address, exc)
            client_socket.close()
            return None
        try:
            return self.handle(ssl_socket, address)
        finally:
            ssl_socket.close()

    def kill_idle(self):
        for g in list(self.idle):
            g.kill(block=False)
