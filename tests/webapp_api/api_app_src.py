"""Source of the test web application (written into WEB-INF/classes/api_app.py of a tmp app)."""

APP_PY = r'''
import json
import os

from pycat.webapp.filters import Filter, ResponseWrapper
from pycat.webapp.listeners import ServletContextListener
from pycat.webapp.servlet import HttpServlet


class AppError(Exception):
    pass


class Echo(HttpServlet):
    def do_get(self, req, resp):
        resp.content_type = "text/plain"
        trail = req.get_attribute("trail") or []
        resp.write("echo sp=%s pi=%s trail=%s dt=%s x=%s init=%s user=%s admin=%s" % (
            req.servlet_path, req.path_info, ",".join(trail), req.dispatcher_type, req.get_parameter("x"),
            req.get_attribute("req-init"), req.remote_user, req.is_user_in_role("admin")))
        if req.dispatcher_type == "FORWARD":
            resp.write(" from=%s uri=%s" % (req.get_attribute("javax.servlet.forward.request_uri"), req.request_uri))

    do_post = do_get


class TagFilter(Filter):
    def do_filter(self, req, resp, chain):
        tag = self.get_init_parameter("tag")
        req.set_attribute("trail", (req.get_attribute("trail") or []) + [tag])
        resp.add_header("X-Filter-" + tag, req.dispatcher_type)
        chain.do_filter(req, resp)


def block_filter(req, resp, chain):
    if req.get_parameter("block"):
        resp.send_error(403, "blocked by a filter")
        return
    chain.do_filter(req, resp)


class UpperResponse(ResponseWrapper):
    def write_bytes(self, data):
        self.wrapped.write_bytes(data.upper())

    def wsgi_start_response(self, status, headers, exc_info=None):
        self.wrapped.wsgi_start_response(status, [h for h in headers if h[0].lower() != "content-length"],
                                         exc_info)
        return self.write_bytes


class UpperFilter(Filter):
    def do_filter(self, req, resp, chain):
        chain.do_filter(req, UpperResponse(resp))


def wsgi_app(environ, start_response):
    req = environ["pycat.request"]
    body = ("wsgi script=%s path=%s trail=%s qs=%s" % (environ["SCRIPT_NAME"], environ["PATH_INFO"],
                                                       ",".join(req.get_attribute("trail") or []),
                                                       environ["QUERY_STRING"])).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Forwarder(HttpServlet):
    def do_get(self, req, resp):
        resp.set_header("X-Outer", "kept")
        resp.write("BEFORE-FORWARD")
        target = req.get_parameter("to", "/echo/fwd?x=1")
        if target.startswith("name:"):
            self.servlet_context.get_named_dispatcher(target[5:]).forward(req, resp)
        else:
            req.get_request_dispatcher(target).forward(req, resp)
        resp.write("AFTER-FORWARD")
        resp.set_header("X-After", "%s %s" % (req.get_attribute("javax.servlet.forward.request_uri"), req.servlet_path))


class Includer(HttpServlet):
    def do_get(self, req, resp):
        resp.set_header("X-Outer", "kept")
        resp.write("A|")
        req.get_request_dispatcher("/inner").include(req, resp)
        resp.write("|B")


class Inner(HttpServlet):
    def do_get(self, req, resp):
        resp.set_status(418)
        resp.set_header("X-Inner", "lost")
        resp.write("inner:%s:%s" % (req.dispatcher_type, req.get_attribute("javax.servlet.include.servlet_path")))


class Boom(HttpServlet):
    def do_get(self, req, resp):
        raise AppError("boom")


class NotFound(HttpServlet):
    def do_get(self, req, resp):
        resp.send_error(404, "nothing here")


class ErrorPage(HttpServlet):
    def do_get(self, req, resp):
        exc = req.get_attribute("javax.servlet.error.exception")
        resp.content_type = "text/plain"
        resp.write("error-page status=%s exc=%s dt=%s uri=%s" % (
            req.get_attribute("javax.servlet.error.status_code"), type(exc).__name__ if exc else None,
            req.dispatcher_type, req.get_attribute("javax.servlet.error.request_uri")))


class Upload(HttpServlet):
    def do_post(self, req, resp):
        out = {"title": req.get_parameter("title"), "failed": req.get_attribute("pycat.parameters.parse_failed"),
               "files": [{"name": p.name, "filename": p.safe_filename, "size": p.size,
                          "type": p.content_type, "sha": __import__("hashlib").sha256(p.data).hexdigest()}
                         for p in req.parts if p.filename is not None]}
        resp.content_type = "application/json"
        resp.write(json.dumps(out))


class ContextInfo(HttpServlet):
    def do_get(self, req, resp):
        ctx = self.servlet_context
        with ctx.get_resource_as_stream("/WEB-INF/data.txt") as fh:
            data = fh.read().decode()
        resp.content_type = "application/json"
        resp.write(json.dumps({
            "started": ctx.get_attribute("started"), "param": ctx.get_init_parameter("log") is not None,
            "data": data, "missing": ctx.get_resource("/WEB-INF/nope.txt"),
            "real": ctx.get_real_path("/WEB-INF/data.txt"), "escape": ctx.get_real_path("/../x"),
            "paths": sorted(ctx.get_resource_paths("/WEB-INF/")), "events": ctx.get_attribute("events")}))


def _log(ctx, line):
    with open(ctx.get_init_parameter("log"), "a") as fh:
        fh.write(line + "\n")


class Listener(ServletContextListener):
    def context_initialized(self, event):
        ctx = event.servlet_context
        ctx.set_attribute("events", [])
        ctx.set_attribute("started", "yes")
        _log(ctx, "context_initialized")

    def context_destroyed(self, event):
        _log(event.servlet_context, "context_destroyed")

    def request_initialized(self, event):
        event.servlet_request.set_attribute("req-init", "yes")

    def request_destroyed(self, event):
        _log(event.servlet_context, "request_destroyed " + event.servlet_request.request_uri)

    def context_attribute_added(self, event):
        events = event.servlet_context.get_attribute("events")
        if events is not None:
            events.append("added " + event.name)
'''

WEB_XML = '''<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0">
  <context-param><param-name>log</param-name><param-value>{log}</param-value></context-param>
  <listener><listener-class>api_app:Listener</listener-class></listener>

  <filter><filter-name>a</filter-name><filter-class>api_app:TagFilter</filter-class>
    <init-param><param-name>tag</param-name><param-value>a</param-value></init-param></filter>
  <filter><filter-name>b</filter-name><filter-class>api_app:TagFilter</filter-class>
    <init-param><param-name>tag</param-name><param-value>b</param-value></init-param></filter>
  <filter><filter-name>byname</filter-name><filter-class>api_app:TagFilter</filter-class>
    <init-param><param-name>tag</param-name><param-value>n</param-value></init-param></filter>
  <filter><filter-name>fwd</filter-name><filter-class>api_app:TagFilter</filter-class>
    <init-param><param-name>tag</param-name><param-value>f</param-value></init-param></filter>
  <filter><filter-name>err</filter-name><filter-class>api_app:TagFilter</filter-class>
    <init-param><param-name>tag</param-name><param-value>e</param-value></init-param></filter>
  <filter><filter-name>block</filter-name><filter-class>api_app:block_filter</filter-class></filter>
  <filter><filter-name>upper</filter-name><filter-class>api_app:UpperFilter</filter-class></filter>

  <!-- servlet-name mappings come after url-pattern ones whatever the document order -->
  <filter-mapping><filter-name>byname</filter-name><servlet-name>echo</servlet-name></filter-mapping>
  <filter-mapping><filter-name>b</filter-name><url-pattern>/echo/*</url-pattern></filter-mapping>
  <filter-mapping><filter-name>a</filter-name><url-pattern>/*</url-pattern></filter-mapping>
  <filter-mapping><filter-name>block</filter-name><url-pattern>/echo/*</url-pattern></filter-mapping>
  <filter-mapping><filter-name>fwd</filter-name><url-pattern>/echo/*</url-pattern>
    <dispatcher>FORWARD</dispatcher></filter-mapping>
  <filter-mapping><filter-name>err</filter-name><url-pattern>/error</url-pattern>
    <dispatcher>ERROR</dispatcher></filter-mapping>
  <filter-mapping><filter-name>upper</filter-name><servlet-name>wsgi</servlet-name></filter-mapping>

  <servlet><servlet-name>echo</servlet-name><servlet-class>api_app:Echo</servlet-class></servlet>
  <servlet-mapping><servlet-name>echo</servlet-name><url-pattern>/echo/*</url-pattern></servlet-mapping>
  <servlet><servlet-name>wsgi</servlet-name><servlet-class>api_app:wsgi_app</servlet-class></servlet>
  <servlet-mapping><servlet-name>wsgi</servlet-name><url-pattern>/wsgi/*</url-pattern></servlet-mapping>
  <servlet><servlet-name>forward</servlet-name><servlet-class>api_app:Forwarder</servlet-class></servlet>
  <servlet-mapping><servlet-name>forward</servlet-name><url-pattern>/forward</url-pattern></servlet-mapping>
  <servlet><servlet-name>include</servlet-name><servlet-class>api_app:Includer</servlet-class></servlet>
  <servlet-mapping><servlet-name>include</servlet-name><url-pattern>/include</url-pattern></servlet-mapping>
  <servlet><servlet-name>inner</servlet-name><servlet-class>api_app:Inner</servlet-class></servlet>
  <servlet-mapping><servlet-name>inner</servlet-name><url-pattern>/inner</url-pattern></servlet-mapping>
  <servlet><servlet-name>boom</servlet-name><servlet-class>api_app:Boom</servlet-class></servlet>
  <servlet-mapping><servlet-name>boom</servlet-name><url-pattern>/boom</url-pattern></servlet-mapping>
  <servlet><servlet-name>nf</servlet-name><servlet-class>api_app:NotFound</servlet-class></servlet>
  <servlet-mapping><servlet-name>nf</servlet-name><url-pattern>/nf</url-pattern></servlet-mapping>
  <servlet><servlet-name>error</servlet-name><servlet-class>api_app:ErrorPage</servlet-class></servlet>
  <servlet-mapping><servlet-name>error</servlet-name><url-pattern>/error</url-pattern></servlet-mapping>
  <servlet><servlet-name>upload</servlet-name><servlet-class>api_app:Upload</servlet-class></servlet>
  <servlet-mapping><servlet-name>upload</servlet-name><url-pattern>/upload</url-pattern></servlet-mapping>
  <servlet><servlet-name>info</servlet-name><servlet-class>api_app:ContextInfo</servlet-class></servlet>
  <servlet-mapping><servlet-name>info</servlet-name><url-pattern>/info</url-pattern></servlet-mapping>

  <welcome-file-list><welcome-file>start.html</welcome-file><welcome-file>index.html</welcome-file></welcome-file-list>
  <error-page><exception-type>api_app.AppError</exception-type><location>/error</location></error-page>
  <error-page><error-code>404</error-code><location>/404.html</location></error-page>
  <mime-mapping><extension>pyc8</extension><mime-type>application/x-pycat-test</mime-type></mime-mapping>
</web-app>
'''


def app_files(log_path):
    return {
        "WEB-INF/web.xml": WEB_XML.format(log=log_path),
        "WEB-INF/classes/api_app.py": APP_PY,
        "WEB-INF/data.txt": "resource data",
        "404.html": "custom not found page",
        "index.html": "the index page",
        "sub/start.html": "sub welcome start",
        "sub/index.html": "sub index (not chosen: start.html comes first)",
        "file.pyc8": "typed",
    }
