"""The examples application: an HttpServlet, a WSGI callable and a servlet that fails."""
import html

from pycat.webapp.servlet import HttpServlet


class HelloServlet(HttpServlet):
    def init(self, config):
        super().init(config)
        self.greeting = self.get_init_parameter("greeting", "Hello")

    def do_get(self, request, response):
        name = request.get_parameter("name", "World")
        response.content_type = "text/plain"
        response.write("%s, %s!\n" % (self.greeting, name))

    def do_post(self, request, response):
        self.do_get(request, response)


def wsgi_app(environ, start_response):
    if environ.get("PATH_INFO") == "/count":
        # the container session as a dict: reading creates nothing, the write creates the session
        session = environ["pycat.session"]
        session["count"] = session.get("count", 0) + 1
        data = ("count=%d\n" % session["count"]).encode("ascii")
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
        return [data]
    body = ("<!doctype html><html><body><h1>A WSGI application</h1>"
            "<p>SCRIPT_NAME = %s<br>PATH_INFO = %s</p></body></html>"
            % (html.escape(environ.get("SCRIPT_NAME", "")), html.escape(environ.get("PATH_INFO", ""))))
    data = body.encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(data)))])
    return [data]


class FailingServlet(HttpServlet):
    def do_get(self, request, response):
        raise RuntimeError("this servlet fails on purpose")
