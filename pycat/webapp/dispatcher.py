"""RequestDispatcher: forward and include inside one Context (Tomcat's ApplicationDispatcher).

``request.get_request_dispatcher(path)`` / ``context.get_request_dispatcher("/x?a=1")`` map
the path with the Context's servlet mappings; ``context.get_named_dispatcher(name)`` targets a
servlet by name and keeps the request's paths.

forward: only before the response is committed; the buffer is cleared, the target sees the new
paths (and request URI), query parameters of the dispatch path come before the original ones,
``javax.servlet.forward.*`` attributes keep the original values, and afterwards the response
is closed (later writes by the caller are dropped), as in Tomcat.

include: the target writes into the response but cannot change status or headers (those calls
are ignored, a WSGI app's start_response too); ``javax.servlet.include.*`` attributes describe
the included path. Both run the filters mapped for FORWARD/INCLUDE.
"""
import logging
from urllib.parse import parse_qsl

from pycat.errors import IllegalStateError
from pycat.webapp.filters import ResponseWrapper, run_servlet

log = logging.getLogger(__name__)

_SAVED = ("wrapper", "servlet_path", "path_info", "match_type", "dispatcher_type", "request_uri",
          "query_string", "_params")


class IncludeResponse(ResponseWrapper):
    """The response as an included servlet sees it: body writes pass, status/header changes don't."""

    def set_status(self, code, reason=None):
        pass

    def set_header(self, name, value):
        pass

    add_header = set_header

    def set_date_header(self, name, timestamp):
        pass

    def set_content_length(self, length):
        pass

    def remove_header(self, name):
        pass

    def set_cookie(self, *args, **kwargs):
        pass

    def send_redirect(self, location, status=302):
        pass

    def send_error(self, code, message=None):
        log.debug("send_error(%s) ignored inside an include", code)

    def reset(self):
        pass

    @property
    def content_type(self):
        return self.wrapped.content_type

    @content_type.setter
    def content_type(self, value):
        pass

    @property
    def status_set(self):
        return True

    def wsgi_start_response(self, status, headers, exc_info=None):
        return self.wrapped.write_bytes


class RequestDispatcher:
    def __init__(self, context, path=None, wrapper=None):
        self.context = context
        self.path = path
        self.wrapper = wrapper

    def __repr__(self):
        return "<RequestDispatcher %s>" % (self.path or "name=%s" % self.wrapper.name)

    def _target(self):
        """(wrapper, servlet_path, path_info, match_type, query) for this dispatch."""
        if self.path is None:
            return self.wrapper, None, None, None, ""
        path, _, query = self.path.partition("?")
        wrapper, servlet_path, path_info, kind = self.context.servlet_map.match(path or "/")
        if wrapper is None:
            raise LookupError("no servlet for %s in context [%s]" % (self.path, self.context.path or "/"))
        return wrapper, servlet_path, path_info, kind, query

    def _switch(self, request, dispatcher_type):
        wrapper, servlet_path, path_info, kind, query = self._target()
        saved = tuple(getattr(request, name) for name in _SAVED)
        request.dispatcher_type = dispatcher_type
        request.wrapper = wrapper
        if self.path is not None:
            request.servlet_path, request.path_info, request.match_type = servlet_path, path_info, kind
            if query:
                # the dispatch path's parameters first, then the original ones
                merged = {}
                for k, v in parse_qsl(query, keep_blank_values=True):
                    merged.setdefault(k, []).append(v)
                for k, values in request.parameters.items():
                    merged.setdefault(k, []).extend(values)
                request._params = merged
            if dispatcher_type == "FORWARD":
                request.request_uri = request.context_path + self.path.partition("?")[0]
                if query:
                    request.query_string = query
        return wrapper, saved

    @staticmethod
    def _restore(request, saved):
        for name, value in zip(_SAVED, saved):
            setattr(request, name, value)

    def _run(self, wrapper, request, response):
        servlet = wrapper.servlet or wrapper.allocate()
        run_servlet(wrapper, servlet, request, response)

    def forward(self, request, response):
        if response.committed:
            raise IllegalStateError("cannot forward after the response was committed")
        response.reset_buffer()
        names = ("request_uri", "context_path", "servlet_path", "path_info", "query_string")
        keys = ["javax.servlet.forward." + n for n in names]
        # the first forward's originals stay through nested forwards; a named forward sets none
        own = self.path is not None and request.get_attribute(keys[0]) is None
        if own:
            for k, v in zip(keys, (request.request_uri, request.context_path, request.servlet_path,
                                   request.path_info, request.query_string or None)):
                request.set_attribute(k, v)
        wrapper, saved = self._switch(request, "FORWARD")
        try:
            self._run(wrapper, request, response)
        finally:
            self._restore(request, saved)
            if own:
                for k in keys:
                    request.remove_attribute(k)
        # the forward produced the whole response: what the caller writes afterwards is dropped
        response.suspended = True

    def include(self, request, response):
        names = ("request_uri", "context_path", "servlet_path", "path_info", "query_string")
        keys = ["javax.servlet.include." + n for n in names]
        old = [request.get_attribute(k) for k in keys]
        wrapper, saved = self._switch(request, "INCLUDE")
        if self.path is not None:
            values = (request.context_path + self.path.partition("?")[0], request.context_path,
                      request.servlet_path, request.path_info, self.path.partition("?")[2] or None)
            for k, v in zip(keys, values):
                request.set_attribute(k, v)
        try:
            self._run(wrapper, request, IncludeResponse(response))
        finally:
            self._restore(request, saved)
            for k, v in zip(keys, old):
                request.set_attribute(k, v)
