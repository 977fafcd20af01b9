"""gevent.pywsgi glue: the per-connection handler and the server used by the Connector.

What we change in pywsgi, and why:

* TCP_NODELAY on every accepted socket, and status line + headers + a small body go out in
  ONE send. Stock pywsgi writes headers and body separately; with Nagle on, the second write
  waits for the client's delayed ACK (~40 ms per keep-alive request).
* Request headers are read by us with a total budget of ``maxHttpHeaderSize`` bytes (request
  line included): too long a request line → 414, too many header bytes → 431, then the
  connection closes and the server goes on. Header lines are parsed into a small
  case-insensitive table (no email.parser), and the WSGI environ is built straight from it.
* Strict as Tomcat 10 (each → 400, connection closed): a request line that is not
  ``token SP target SP HTTP/1.x`` (SP or HTAB between; so no "\\x0b"/"\\x1c" separators, no
  control characters in the target, no non-token method such as ``G<>T``); a control character
  other than HTAB, or a CR not followed by LF, anywhere in the headers; a malformed header
  line; more than ``maxHeaderCount`` headers; an HTTP/1.1 request without exactly one Host
  header; a Host value that is not a host name, IPv4 or [IPv6] literal with an optional port;
  a Transfer-Encoding other than "chunked", or any Transfer-Encoding in an HTTP/1.0 request,
  or together with Content-Length; a Content-Length that is not digits or is above 2**63-1
  (Tomcat's long). The checks are precompiled regexes run once per request line / header
  block, not per-character Python loops.
* Those early 400/414/431 answers never reach the pipeline, so, like Tomcat's
  CoyoteAdapter.log, they are written to the access log found the way StandardEngine.logAccess
  finds one (the Engine's AccessLogValves, else the default Host's, else its ROOT context's);
  the parts of an unparsable request line are logged as "-".
* A malformed body (bad chunk framing, or EOF before Content-Length bytes) raises
  ``BadRequest`` (an OSError, Tomcat's BadRequestException) to whoever reads it; the Wrapper
  answers it with 400, no stack trace, and the connection closes after the response.
* ``connectionTimeout`` is the socket timeout; ``keepAliveTimeout`` applies while waiting for
  the next request on a kept-alive connection; ``maxKeepAliveRequests`` closes the connection
  (with ``Connection: close``) after that many requests.
* Greenlets waiting for a request line are tracked as *idle* so stop() can end them at once
  instead of waiting for idle keep-alive clients.
* The container's buffered responses skip WSGI's start_response + write: Response.finish checks
  the header lines as start_response would and ``send_whole`` sends what pywsgi would have sent,
  in one send (WSGI's per-header work cost as much as the rest of a hello-world request); any
  other response goes the WSGI way.
"""
import io
import logging
import socket
import ssl
import time
from time import time as _time

from gevent import getcurrent, sleep
from gevent.pywsgi import WSGIHandler, WSGIServer, Input, _InvalidClientInput

from pycat.connector.http_parse import (_GOOD_HOSTS, _HOST, _REQUEST_LINE, HeaderTooLarge, Headers,
                                        InvalidRequest, RequestLineTooLong, _parse_content_length, parse_header_lines)
from pycat.connector.request import BadRequest, Request
from pycat.connector.response import Response
from pycat.valves.access_log import AccessLogValve

log = logging.getLogger(__name__)

_RESPONSE_431 = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
                 b"Content-Type: text/plain\r\nContent-Length: 35\r\n\r\n"
                 b"Request header fields are too large")
_RESPONSE_414 = (b"HTTP/1.1 414 URI Too Long\r\nConnection: close\r\n"
                 b"Content-Type: text/plain\r\nContent-Length: 20\r\n\r\nRequest-URI too long")
_RESPONSE_400 = (b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                 b"Content-Type: text/plain\r\nContent-Length: 11\r\n\r\nBad Request")
_COMBINE_LIMIT = 65536
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = (None, "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DATE = [0.0, 0.0, ""]     # [start, end) of the second that the Date text is for, and the text


def _date(now):
    """pywsgi's format_date_time(now), as text, remembered for the rest of that second."""
    second = int(now)
    t = time.gmtime(second)
    text = "%s, %02d %3s %4d %02d:%02d:%02d GMT" % (
        _WEEKDAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)
    _DATE[:] = [float(second), second + 1.0, text]
    return text


class _BodyInput(Input):
    """pywsgi's Input, with a malformed body reported as BadRequest and the connection closed
    (after it, the stream cannot be trusted to start the next request)."""

    __slots__ = ("handler",)

    def __init__(self, handler, content_length, chunked):
        sock = handler.socket if handler.headers.get("expect") == "100-continue" else None
        Input.__init__(self, handler.rfile, content_length, socket=sock, chunked_input=chunked)
        self.handler = handler

    def _bad(self, exc):
        self.handler.close_connection = True
        return BadRequest("malformed request body: %s" % " ".join(str(a) for a in exc.args))

    def _guarded(self, method, arg):
        """A malformed body becomes BadRequest; timeouts and resets stay what they are."""
        try:
            return method(self, arg)
        except _InvalidClientInput as exc:
            raise self._bad(exc) from None
        except OSError as exc:
            if type(exc) is not OSError or exc.errno is not None:
                raise
            raise self._bad(exc) from None    # pywsgi's "unexpected end of file"

    def read(self, length=None):
        return self._guarded(Input.read, length)

    def readline(self, size=None):
        return self._guarded(Input.readline, size)


# a request without a body reads b"" from this, one for all: an empty stream of length 0 (gevent
# 26 looks up rfile.read before the length, so a None rfile failed every read, e.g. a form's
# parameters of a POST with Content-Length: 0)
_NO_BODY = Input(io.BytesIO(), 0)


def access_log_valves(engine):
    """The access logs of an Engine for requests that never reached a Host (Tomcat's
    StandardEngine.logAccess with useDefault): the Engine's own, else the default Host's, else
    those of the default Host's ROOT context."""
    found = _access_logs_of(engine)
    if found:
        return found
    mapping = engine.mapper.map(None, "/")
    for container in (mapping.host, mapping.context):
        if container is not None:
            found = _access_logs_of(container)
            if found:
                return found
    return ()


def _access_logs_of(container):
    return [v for v in container.pipeline.valves if isinstance(v, AccessLogValve)]


def log_access(valves, request, response):
    for valve in valves:
        if valve.enabled and valve.state.available:
            valve.log(request, response)


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

    def handle_one_request(self):
        # pywsgi's, without its own fixed 8 KiB request-line check (which answered 414 before
        # read_request could apply maxHttpHeaderSize and log the answer): None closes the
        # connection, (status, bytes) answers and closes, True reads the next request
        if self.rfile.closed:
            return None
        try:
            line = self.read_requestline()
            if line == "\r\n" or line == "\n":
                # RFC 9112 2.2 (and Tomcat): empty lines before a request line are skipped; some
                # clients send a CRLF after a POST body
                line = self.read_requestline()
        except OSError:
            return None          # reset or timeout while idle: nothing to answer
        if not line:
            return None
        self.requestline = line
        self.response_length = 0
        try:
            self.read_request(self.requestline)
        except Exception as ex:
            return self._handle_client_error(ex)
        self.environ = self.get_environ()
        self.application = self.server.application
        self.handle_one_response()
        if self.close_connection or self.rfile.closed:
            return None
        return True

    def read_request(self, raw_requestline):
        server = self.server
        limit = server.max_header_size
        match = _REQUEST_LINE.fullmatch(raw_requestline) if len(raw_requestline) <= limit else None
        if match is None:
            # nothing of this request was parsed: the access log shows "-" (see _log_early)
            self.command = self.headers = None
            if len(raw_requestline) > limit:
                raise RequestLineTooLong()
            raise InvalidRequest("Invalid request line: %r" % (raw_requestline[:200],))
        self.command, self.path, self.request_version = match.groups()
        budget = limit - len(raw_requestline)
        readline = self.rfile.readline
        lines = []
        while True:
            line = readline(budget + 1)
            budget -= len(line)
            if budget < 0:
                self.headers = None
                raise HeaderTooLarge()
            if line == b"\r\n" or line == b"\n":
                break
            if not line:
                self.headers = None
                raise InvalidRequest("connection closed inside the request headers")
            lines.append(line)
        try:
            pairs = parse_header_lines(lines)
        except ValueError:
            self.headers = None
            raise
        headers = self.headers = Headers(pairs)
        max_count = server.max_header_count
        if 0 <= max_count < len(pairs):
            raise InvalidRequest("%d request headers, more than maxHeaderCount (%d)"
                                        % (len(pairs), max_count))
        http11 = self.request_version == "HTTP/1.1"
        te = headers.get("transfer-encoding")
        if te is not None:
            if not http11:
                # RFC 9112 6.1: HTTP/1.0 has no chunked framing; Tomcat 10.1 refuses it too
                raise InvalidRequest("Transfer-Encoding in an HTTP/1.0 request")
            if te.strip().lower() != "chunked":
                # anything but plain chunked (gzip, chunked; chunked, chunked...) invites smuggling
                raise InvalidRequest("unsupported Transfer-Encoding: %r" % te[:100])
            if "content-length" in headers:
                # RFC 9112 6.3: a request smuggling attempt until proven otherwise; rejecting it (and
                # closing) is allowed and safer than guessing which length a proxy in front used
                raise InvalidRequest("both Transfer-Encoding and Content-Length")
        content_length = headers.get("content-length")
        if content_length is not None:
            content_length = _parse_content_length(content_length)
        self.content_length = content_length
        host = headers.get("host")
        if host is None:
            if http11:
                raise InvalidRequest("HTTP/1.1 request without a Host header")
        elif host not in _GOOD_HOSTS:
            if _HOST.fullmatch(host) is None:
                raise InvalidRequest("%s: %r" % ("more than one Host header" if ", " in host
                                                        else "invalid Host header", host[:100]))
            if len(_GOOD_HOSTS) < 256 and len(host) < 300:    # a node sees few names: skip the regex
                _GOOD_HOSTS.add(host)
        conn = headers.get("connection")
        tokens = {t.strip() for t in conn.lower().split(",")} if conn else ()
        if http11:
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
        if "transfer-encoding" in headers:          # read_request let only "chunked" through
            self.wsgi_input = _BodyInput(self, None, True)
        elif self.content_length:
            self.wsgi_input = _BodyInput(self, self.content_length, False)
        else:
            self.wsgi_input = _NO_BODY              # reads b"", discards nothing: one for all
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

    def send_whole(self, status, code, block, body):
        """The container's way out for a buffered response (Response.finish): ``status`` (no CR
        or LF), ``block`` its header lines ("Name: value\\r\\n" each, checked as
        response.header_block checks them: with a Content-Length, without Connection or Date),
        the whole body (None for HEAD), for a code that has a body. It leaves in one send, byte
        for byte what start_response + write would send, without WSGI's per-header work: for a
        hello-world servlet that work cost about as much as the whole container (a bare WSGI
        app has no other way). Returns False, having done nothing, when the text is not latin-1
        (start_response's error to raise) or the response has begun: the caller then goes the
        WSGI way, which does as it always did."""
        if self.headers_sent:
            return False
        t = _time()
        clock = _DATE
        date = clock[2] if clock[0] <= t < clock[1] else _date(t)
        # pywsgi's order: the app's headers, then (HTTP/1.0) its Connection, then Date, then
        # finalize_headers' Connection: close when the connection ends after this response
        if self.request_version == "HTTP/1.1":
            text = "HTTP/1.1 %s\r\n%sDate: %s\r\n%s\r\n" % (
                status, block, date, "Connection: close\r\n" if self.close_connection else "")
        else:
            text = "HTTP/1.1 %s\r\n%s%sDate: %s\r\n\r\n" % (
                status, block, "Connection: close\r\n" if self.close_connection else "Connection: keep-alive\r\n",
                date)
        try:
            head = text.encode("latin-1")
        except UnicodeEncodeError:
            return False
        # what start_response and write leave behind (pywsgi reads status and headers_sent after)
        self.code = code
        self._orig_status = status
        self.status = status.encode("latin-1")
        self.headers_sent = True
        if not body:
            self._sendall(head)
        elif len(body) <= _COMBINE_LIMIT:
            self._sendall(head + body)
        else:
            self._sendall(head)
            self._sendall(body)
        return True

    def _handle_client_error(self, ex):
        if isinstance(ex, OSError):
            # timeout (connectionTimeout) or reset while reading the headers: just close, as Tomcat;
            # also pywsgi's report of a bad body found while discarding it (the response is out)
            log.debug("Closing connection from %s: %s", self.client_address, ex)
            return None
        if isinstance(ex, HeaderTooLarge):
            log.info("Request from %s: headers larger than maxHttpHeaderSize (%d)",
                     self.client_address, self.server.max_header_size)
            answer = ("431", _RESPONSE_431)
        elif isinstance(ex, RequestLineTooLong):
            log.info("Request from %s: request line longer than maxHttpHeaderSize", self.client_address)
            answer = ("414", _RESPONSE_414)
        else:
            log.info("Invalid request from %s: %s", self.client_address,
                     getattr(ex, "formatted_message", None) or str(ex) or type(ex).__name__)
            answer = ("400", _RESPONSE_400)
        self._log_early(int(answer[0]), answer[1])
        return answer

    def _log_early(self, status, wire):
        """Access-log an answer given before the pipeline (Tomcat's CoyoteAdapter.log)."""
        adapter = self.server.application
        engine = getattr(adapter, "engine", None)
        if engine is None:
            return      # a bare WSGI callable (benchmarks): no container, no access log
        try:
            valves = access_log_valves(engine)
            if not valves:
                return
            command = self.command
            # an unparsable request line: every part is "-" (%r gives "- - -"; Tomcat writes "-")
            env = {"REQUEST_METHOD": command or "-", "pycat.handler": self, "QUERY_STRING": "",
                   "SERVER_PROTOCOL": self.request_version if command is not None else "-",
                   "pycat.raw_path": "-"}
            addr = self.client_address
            if isinstance(addr, tuple):
                env["REMOTE_ADDR"] = addr[0]
                env["REMOTE_PORT"] = str(addr[1])
            if command is not None:
                path, _, env["QUERY_STRING"] = self.path.partition("?")
                env["pycat.raw_path"] = path
            headers = self.headers
            if command is not None and headers is not None:
                for name, value in headers.pairs:
                    key = name.upper().replace("-", "_")
                    if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                        key = "HTTP_" + key
                    env[key] = env[key] + "," + value if key in env else value
            request = Request(env, adapter.connector, time.time(), adapter.scheme, adapter.secure)
            response = Response(request)
            response.status = status
            response.content_type = "text/plain"
            response.set_header("Connection", "close")
            response.write_bytes(wire.partition(b"\r\n\r\n")[2])
            log_access(valves, request, response)
        except Exception:
            log.exception("Access logging of an early %d answer failed", status)

    def log_request(self):
        pass   # access logging is the AccessLogValve's job


class PycatWSGIServer(WSGIServer):
    handler_class = PycatHandler
    connection_timeout = 20.0
    keep_alive_timeout = 20.0
    max_keep_alive_requests = 100
    max_header_size = 8192
    max_header_count = 100
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
