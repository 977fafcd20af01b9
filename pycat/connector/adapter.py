"""Adapter: the WSGI application pywsgi calls; turns one environ into a trip down the Engine.

environ → Request/Response → URI check and normalization (uri.py; bad → 400 without entering
the pipeline, but access-logged, like Tomcat's CoyoteAdapter) → the Engine's mapper → Engine
pipeline → the response's ``finish()`` hands status, headers and body back to pywsgi. An exception that
escapes the pipeline is logged and answered with 500 (if nothing was sent yet); the
connection and the server go on.
"""
import logging
import time

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
        self.request_count += 1
        if status >= 400:
            self.error_count += 1
        self.bytes_sent += sent
        self.processing_time += seconds
        if seconds > self.max_time:
            self.max_time = seconds


def _count(connector, context, response, seconds):
    """One request's figures, into its Connector's and its Context's ``request_stats``."""
    status, sent = response.status, response.bytes_sent
    for owner in (connector, context):
        if owner is not None:
            stats = owner.__dict__.get("request_stats")
            if stats is None:
                stats = owner.request_stats = RequestStats()
            stats.add(status, sent, seconds)


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

    @staticmethod
    def _lookup(addr):
        """enableLookups: reverse DNS for request.remote_host (gevent's resolver: cooperative)."""
        try:
            return socket.gethostbyaddr(addr)[0]
        except (OSError, UnicodeError):
            return addr

    def make_request(self, environ, now):
        """The Request of one environ (the AJP adapter overrides it: its client view is forwarded)."""
        return Request(environ, self.connector, now, self.scheme, self.secure)

    def __call__(self, environ, start_response):
        now = time.time()
        request = self.make_request(environ, now)
        response = Response(request, start_response)
        if self.server_header is not None:
            response.headers.append(("Server", self.server_header))
        raw = request.request_uri
        clean = self.clean_paths
        if raw in clean:
            # seen before and nothing to decode nor normalise (see below): no call to normalize()
            path = raw
            params = None
        else:
            try:
                path, params = normalize(raw, self.uri_encoding)
            except BadUri as exc:
                return self._bad_uri(exc, environ, start_response, request, response)
            if path == raw and not params and len(clean) < 1024 and len(raw) < 256:
                clean.add(raw)    # normalize() returns such a path unchanged: every time (it is pure)
        if self.lookups:
            request.remote_host = self._lookup(request.remote_addr)
        request.decoded_uri = path
        if params:
            request.path_parameters = params
        engine = self.engine
        workers = self.connector.workers
        try:
            request.apply_mapping(engine.mapper.map(environ.get("HTTP_HOST"), path))
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
        _count(self.connector, request.context, response, time.time() - now)
        try:
            return response.finish()
        except (ValueError, UnicodeError) as exc:
            # pywsgi refuses CR/LF (header injection) or non-latin-1 text in status/headers
            log.error("Invalid response headers from %s %s: %s", request.method, request.request_uri, exc)
            start_response("500 Internal Server Error", [("Content-Length", "0")])
            return []

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
