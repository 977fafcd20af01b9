"""Servlets: the HttpServlet base class and WsgiServlet, which runs any WSGI callable.

HttpServlet dispatches on the method to ``do_get``, ``do_post``, ``do_put``, ``do_delete``,
``do_head``, ``do_options``, ``do_trace``; a method the subclass does not implement gets 405
with an Allow header (501 for methods HTTP does not know). HEAD runs ``do_get`` with the body
discarded but its length kept in Content-Length.

WsgiServlet calls a WSGI application with SCRIPT_NAME = context path (+ servlet path for a
non-default, non-extension mapping) and PATH_INFO = the rest, like mounting it at that prefix.
"""
import logging

from pycat.webapp.loader import app_code

log = logging.getLogger(__name__)

_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE")
# method -> the name of its handler, made once (not a lower() and a concatenation per request)
_HANDLERS = {m: "do_" + m.lower() for m in _METHODS}


class Servlet:
    """Minimal servlet contract: init(config), service(request, response), destroy()."""

    config = None

    def init(self, config):
        self.config = config

    def get_init_parameter(self, name, default=None):
        return self.config.get_init_parameter(name, default) if self.config is not None else default

    @property
    def servlet_context(self):
        return self.config.context if self.config is not None else None

    def service(self, request, response):
        raise NotImplementedError

    def destroy(self):
        pass


class HttpServlet(Servlet):
    def service(self, request, response):
        try:
            handler = getattr(self, _HANDLERS[request.method])
        except (KeyError, AttributeError):
            response.send_error(501, "Method %s is not implemented by this servlet" % request.method)
            return
        handler(request, response)

    def _implemented(self, name):
        return getattr(type(self), name) is not getattr(HttpServlet, name)

    def allowed_methods(self):
        allowed = []
        if self._implemented("do_get"):
            allowed += ["GET", "HEAD"]
        for name in ("POST", "PUT", "DELETE"):
            if self._implemented("do_" + name.lower()):
                allowed.append(name)
        return allowed + ["OPTIONS"]

    def _not_allowed(self, request, response):
        response.set_header("Allow", ", ".join(self.allowed_methods()))
        response.send_error(405, "HTTP method %s is not supported by this URL" % request.method)

    def do_get(self, request, response):
        self._not_allowed(request, response)

    def do_post(self, request, response):
        self._not_allowed(request, response)

    def do_put(self, request, response):
        self._not_allowed(request, response)

    def do_delete(self, request, response):
        self._not_allowed(request, response)

    def do_head(self, request, response):
        if not self._implemented("do_get"):
            self._not_allowed(request, response)
            return
        response.suppress_body()
        self.do_get(request, response)

    def do_options(self, request, response):
        response.set_header("Allow", ", ".join(self.allowed_methods()))

    def do_trace(self, request, response):
        response.send_error(405, "TRACE is disabled")


class WsgiServlet(Servlet):
    """Runs a WSGI callable under the Context's path (see module doc)."""

    def __init__(self, app):
        self.app = app

    def service(self, request, response):
        # the call, the iteration and close() are app code: whatever they raise, sys.exit() included,
        # run_servlet (filters.py) turns into a failure of this request, and close() always runs
        environ = request.wsgi_environ()
        result = self.app(environ, response.wsgi_start_response)
        try:
            if hasattr(result, "__len__") and not response.committed:
                # a sized result (list, tuple): buffered, sent with a Content-Length (as pywsgi does)
                for chunk in result:
                    response.write_bytes(chunk)
            else:
                # an iterator: each block goes out as it comes (PEP 3333 forbids holding it back);
                # the Response keeps only the block completing a declared Content-Length for finish()
                for chunk in result:
                    if chunk:
                        response.write_bytes(chunk)
                        response.flush()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not response.status_set:
            raise RuntimeError("WSGI application %r did not call start_response" % (self.app,))


class UnsupportedServlet(HttpServlet):
    """Stands in for Tomcat servlets with no Python meaning (JSP): 501 with a clear message."""

    def init(self, config):
        super().init(config)
        wrapper = getattr(config, "wrapper", None)
        log.info("Servlet [%s] (%s) is not supported by pycat; its URLs answer 501",
                 getattr(config, "servlet_name", "?"), getattr(wrapper, "servlet_class", "?"))

    def service(self, request, response):
        response.send_error(501, "%s is not supported by pycat" % (request.servlet_path or "this resource"))


# Tomcat's conf/web.xml names these; a stock conf/web.xml therefore works unchanged
SERVLET_ALIASES = {
    "org.apache.catalina.servlets.DefaultServlet": "pycat.webapp.default_servlet:DefaultServlet",
    "org.apache.jasper.servlet.JspServlet": "pycat.webapp.servlet:UnsupportedServlet",
    "org.apache.catalina.servlets.CGIServlet": "pycat.webapp.servlet:UnsupportedServlet",
    "org.apache.catalina.ssi.SSIServlet": "pycat.webapp.servlet:UnsupportedServlet",
}


def instantiate_servlet(name, context):
    """servlet-class → a servlet: an HttpServlet/Servlet subclass is instantiated; a class
    with __call__ instances or any other callable is a WSGI application."""
    name = SERVLET_ALIASES.get((name or "").strip(), name)
    loader = getattr(context, "loader", None)
    if loader is not None:
        obj = loader.load(name)
    else:
        from pycat.webapp.loader import WebappLoader
        obj = WebappLoader("/nonexistent").load(name)
    if isinstance(obj, type):
        if issubclass(obj, Servlet) or hasattr(obj, "service"):
            with app_code("creating servlet %s", name):
                return obj()
        return WsgiServlet(obj)     # a class whose instances are WSGI responses
    if isinstance(obj, Servlet):
        return obj
    if callable(obj):
        return WsgiServlet(obj)
    raise TypeError("%s is neither a servlet class nor a WSGI callable" % name)
