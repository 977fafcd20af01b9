"""Adapter: the WSGI application pywsgi calls; turns one environ into a trip down the Engine.

environ → Request/Response → URI check and normalization (uri.py; bad → 400 without entering
the pipeline, but access-logged, like Tomcat's CoyoteAdapter) → the Engine's mapper → Engine
pipeline → the response's ``finish()`` hands status, headers and body back to pywsgi. An exception that
escapes the pipeline is logged and answered with 500 (if nothing was sent yet); the
connection and the server go on.
"""
import logging
from time import time as _time

import gevent.socket as socket

from pycat.connector.handler import access_log_valves, log_access
from pycat.connector.request import Request
from pycat.connector.response import Response
from pycat.connector.uri import BadUri, normalize

log = logging.getLogger(__name__)


class RequestStats:
    """What the manager's status page shows of a Connector or a Context (Tomcat's
    RequestGroupInfo): requests, error answers (status >= 400), body bytes sent, processing time."""
    __slots__ = ("request_count", "error_count", "bytes_sent", "processing_time", "max_time")

    def __init__(self):
        self.request_count = self.error_count = self.bytes_sent = 0
        self.processing_time = self.max_time = 0.0

    def add(self, status, sent, seconds):
        # Adapter.__call__ does the same inline for each request: keep the two alike
        self.request_count += 1
        if status >= 400:
            self.error_count += 1
        self.bytes_sent += sent
        self.processing_time += seconds
        if seconds > self.max_time:
            self.max_time = seconds


class Adapter:
    def __init__(self, connector, engine):
        self.connector = connector
        self.engine = engine
        self.uri_encoding = getattr(connector, "uri_encoding", None) or "utf-8"
        self.server_header = getattr(connector, "server", None) or None
        self.lookups = bool(getattr(connector, "enable_lookups", False))
        self.scheme = getattr(connector, "scheme", "http")
        self.secure = bool(getattr(connector, "secure", False))
        self.clean_paths = set()    # raw paths normalize() leaves as they are, with no parameters
        # a subclass that builds its own Requests (AJP) is asked; the HTTP Adapter builds them inline
        self.custom_requests = type(self).make_request is not Adapter.make_request
        # the Connector's figures (kept across restarts: a new Adapter finds them)
        stats = getattr(connector, "request_stats", None)
        if stats is None:
            stats = RequestStats()
            if connector is not None:
                connector.request_stats = stats
        self.stats = stats

    @staticmethod
    def _lookup(addr):
        """enableLookups: reverse DNS for request.remote_host (gevent's resolver: cooperative)."""
        try:
            return socket.gethostbyaddr(addr)[0]
        except (OSError, UnicodeError):
            return addr

    def make_request(self, environ, now, mapping=None):
        """The Request of one environ (the AJP adapter overrides it: its client view is forwarded)."""
        return Request(environ, self.connector, now, self.scheme, self.secure, mapping)

    def __call__(self, environ, start_response):
        # Runs once per request: every step is inline unless it has work to do (see the notes on
        # the request path's fast paths in docs/design.md); the rare cases leave for methods.
        now = _time()
        raw = environ.get("pycat.raw_path") or environ.get("PATH_INFO", "/")    # Request.request_uri
        clean = self.clean_paths
        if raw in clean:
            # seen before and nothing to decode nor normalise (see below): no call to normalize()
            path = raw
            params = None
        else:
            try:
                path, params = normalize(raw, self.uri_encoding)
            except BadUri as exc:
                request = self.make_request(environ, now)
                return self._bad_uri(exc, environ, start_response, request, Response(request, start_response))
            if path == raw and not params and len(clean) < 1024 and len(raw) < 256:
                clean.add(raw)    # normalize() returns such a path unchanged: every time (it is pure)
        engine = self.engine
        try:
            mapping = engine.mapper.map(environ.get("HTTP_HOST"), path)
            failure = None
        except Exception as exc:
            mapping, failure = None, exc     # answered 500 below, as a failure in the pipeline is
        if self.custom_requests:
            request = self.make_request(environ, now, mapping)
        else:
            request = Request(environ, self.connector, now, self.scheme, self.secure, mapping)
        request.decoded_uri = path
        if params:
            request.path_parameters = params
        if self.lookups:
            request.remote_host = self._lookup(request.remote_addr)
        # the HTTP connector's handler may send the response itself (Response.finish); AJP's may not
        handler = None if self.custom_requests else environ.get("pycat.handler")
        response = Response(request, start_response, handler)
        if self.server_header is not None:
            response.headers.append(("Server", self.server_header))
        workers = self.connector.workers
        try:
            if failure is not None:
                raise failure
            workers.acquire()    # maxThreads: requests in the pipeline at once
            try:
                engine.pipeline.first.invoke(request, response)
            finally:
                workers.release()
        except Exception:
            log.exception("Exception processing %s %s", request.method, request.request_uri)
            if response.committed:
                response.abort()
            else:
                response.reset()
                response.status = 500
        # the request's figures for the status page: RequestStats.add() on the Connector's and
        # its Context's, inline (two calls cost more than the additions)
        seconds = _time() - now
        status = response.status
        sent = 0 if response._suppress else response._body_len + response._streamed   # bytes_sent
        stats = self.stats
        stats.request_count += 1
        stats.bytes_sent += sent
        stats.processing_time += seconds
        if seconds > stats.max_time:
            stats.max_time = seconds
        context = request.context
        if context is not None:
            stats = context.request_stats
            if stats is None:
                stats = context.request_stats = RequestStats()
            stats.request_count += 1
            stats.bytes_sent += sent
            stats.processing_time += seconds
            if seconds > stats.max_time:
                stats.max_time = seconds
        if status >= 400:
            self._count_error(context)
        try:
            return response.finish()
        except (ValueError, UnicodeError) as exc:
            # pywsgi refuses CR/LF (header injection) or non-latin-1 text in status/headers
            log.error("Invalid response headers from %s %s: %s", request.method, request.request_uri, exc)
            start_response("500 Internal Server Error", [("Content-Length", "0")])
            return []

    def _count_error(self, context):
        """The error half of the inline RequestStats.add()s above (a status >= 400)."""
        self.stats.error_count += 1
        if context is not None:
            context.request_stats.error_count += 1

    def _bad_uri(self, exc, environ, start_response, request, response):
        if request.request_uri == "*" and request.method == "OPTIONS":
            start_response("200 OK", [("Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS"),
                                      ("Content-Length", "0")])
            return []
        log.info("400 for %r from %s: %s", environ.get("RAW_URI"), request.remote_addr, exc)
        response.status = 400
        response.content_type = "text/plain;charset=utf-8"
        response.write_bytes(b"Bad Request")
        # never reaches a Host's pipeline: logged as Tomcat's CoyoteAdapter.log does
        log_access(access_log_valves(self.engine), request, response)
        return response.finish()
