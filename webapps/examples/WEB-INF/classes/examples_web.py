"""The examples' filter, listener, error page servlet and protected page (see WEB-INF/web.xml)."""
import html
import time

from pycat.webapp.filters import Filter
from pycat.webapp.listeners import ServletContextListener, ServletRequestListener
from pycat.webapp.servlet import HttpServlet


class TimingFilter(Filter):
    """Adds X-Examples-Time (milliseconds spent below this filter) to every response it can."""

    def do_filter(self, request, response, chain):
        start = time.perf_counter()
        try:
            chain.do_filter(request, response)
        finally:
            # headers already sent (a streamed body) cannot change: set_header is then a no-op
            response.set_header("X-Examples-Time", "%.3f" % ((time.perf_counter() - start) * 1000))


class StatsListener(ServletContextListener, ServletRequestListener):
    """Counts the requests of this application in a ServletContext attribute."""

    def context_initialized(self, event):
        event.servlet_context.set_attribute("examples.started", time.time())
        event.servlet_context.set_attribute("examples.requests", 0)

    def request_initialized(self, event):
        ctx = event.servlet_context
        ctx.set_attribute("examples.requests", (ctx.get_attribute("examples.requests") or 0) + 1)


class StatsServlet(HttpServlet):
    def do_get(self, request, response):
        ctx = self.servlet_context
        response.content_type = "text/plain"
        response.write("requests=%d since=%d\n" % (ctx.get_attribute("examples.requests"),
                                                   ctx.get_attribute("examples.started")))


class ErrorServlet(HttpServlet):
    """The <error-page> for exceptions: shows what the container tells an error page."""

    def do_get(self, request, response):
        exc = request.get_attribute("javax.servlet.error.exception")
        response.content_type = "text/html"
        response.write("<!doctype html><title>Examples: error</title><h1>Something went wrong</h1>"
                       "<p>Status %s for %s: %s</p>" % (
                           request.get_attribute("javax.servlet.error.status_code"),
                           html.escape(str(request.get_attribute("javax.servlet.error.request_uri"))),
                           html.escape("%s: %s" % (type(exc).__name__, exc) if exc else "-")))

    do_post = do_get


class ProtectedServlet(HttpServlet):
    """Only users with role "tomcat" or "role1" get here (BASIC auth, see web.xml)."""

    def do_get(self, request, response):
        response.content_type = "text/plain"
        response.write("Hello %s: you are in the protected area (tomcat role: %s)\n"
                       % (request.remote_user, request.is_user_in_role("tomcat")))
