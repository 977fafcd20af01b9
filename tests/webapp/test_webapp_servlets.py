"""HttpServlet and WSGI servlets, exceptions, error pages, web.xml-driven contexts."""
import shutil
import sys
import wsgiref.validate

import pytest

from pycat.webapp.servlet import HttpServlet

from pycat_harness import REPO, Tree, get, raw_exchange

pytestmark = pytest.mark.timeout(30)


class OnlyGet(HttpServlet):
    def do_get(self, request, response):
        response.content_type = "text/plain"
        response.set_header("X-Seen", request.get_header("x-test", "-"))
        response.set_cookie("flavour", "oat", max_age=60, path="/", http_only=True)
        response.write("cookies=%s path=%s info=%s" % (sorted(request.cookies.items()), request.servlet_path,
                                                       request.path_info))


class Boom(HttpServlet):
    def do_get(self, request, response):
        raise ZeroDivisionError("boom <script>")


class Redirect(HttpServlet):
    def do_get(self, request, response):
        response.send_redirect("target?x=1")


class Teapot(HttpServlet):
    def do_get(self, request, response):
        response.send_error(418, "short and stout")


def wsgi_app(environ, start_response):
    # PEP 3333: environ strings carry the request bytes as latin-1
    body = ("%s|%s|%s" % (environ["SCRIPT_NAME"], environ["PATH_INFO"], environ["QUERY_STRING"])).encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def streaming_wsgi(environ, start_response):
    start_response("201 Created", [("Content-Type", "text/plain")])
    yield b"a"
    yield b""
    yield b"b"


@pytest.fixture
def tree(tmp_path):
    servlets = [("get", OnlyGet(), ["/get", "/pre/*"]), ("boom", Boom(), ["/boom"]),
                ("redir", Redirect(), ["/dir/redirect"]), ("tea", Teapot(), ["/tea"]),
                ("wsgi", "test_webapp_servlets:validated_app", ["/wsgi/*"]),
                ("wsgiexact", "test_webapp_servlets:validated_app", ["/exact"]),
                ("wsgidefault", "test_webapp_servlets:validated_app", ["*.w"]),
                ("stream", "test_webapp_servlets:streaming_wsgi", ["/stream"])]
    t = Tree(tmp_path, contexts={"/ctx": {"servlets": servlets}})
    yield t
    t.stop()


validated_app = wsgiref.validate.validator(wsgi_app)


def test_http_servlet_get_cookies_headers(tree):
    status, headers, body = get(tree.port, "/ctx/get", headers={"Cookie": 'a=1; b="two"', "X-Test": "yes"})
    assert status == 200
    assert body == b"cookies=[('a', '1'), ('b', 'two')] path=/get info=None"
    assert headers["x-seen"] == "yes"
    assert headers["set-cookie"] == "flavour=oat; Max-Age=60; Path=/; HttpOnly"
    assert get(tree.port, "/ctx/pre/x/y")[2].endswith(b"path=/pre info=/x/y")


def test_unimplemented_method_is_405_with_allow(tree):
    status, headers, body = get(tree.port, "/ctx/get", method="POST", body=b"x=1")
    assert status == 405 and headers["allow"] == "GET, HEAD, OPTIONS" and b"HTTP Status 405" in body
    assert get(tree.port, "/ctx/get", method="PATCH")[0] == 501


def test_head_runs_get_without_body(tree):
    data = raw_exchange(tree.port, b"HEAD /ctx/get HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b" 200 " in head and b"Content-Length: 30" in head and rest == b""


def test_options_lists_methods(tree):
    status, headers, _ = get(tree.port, "/ctx/get", method="OPTIONS")
    assert status == 200 and headers["allow"] == "GET, HEAD, OPTIONS"


def test_exception_gives_500_page_then_server_goes_on(tree, caplog):
    status, headers, body = get(tree.port, "/ctx/boom")
    assert status == 500 and b"HTTP Status 500" in body
    assert b"ZeroDivisionError" in body and b"<script>" not in body and b"&lt;script&gt;" in body
    assert get(tree.port, "/ctx/get")[0] == 200
    assert "Servlet.service() for servlet [boom]" in caplog.text


def test_send_error_with_message_and_redirect(tree):
    status, _, body = get(tree.port, "/ctx/tea")
    assert status == 418 and b"short and stout" in body
    status, headers, _ = get(tree.port, "/ctx/dir/redirect")
    assert status == 302 and headers["location"] == "/ctx/dir/target?x=1"


@pytest.mark.parametrize("path, expect", [
    ("/ctx/wsgi/a/b?q=1", b"/ctx/wsgi|/a/b|q=1"),
    ("/ctx/wsgi", b"/ctx/wsgi||"),
    ("/ctx/exact", b"/ctx/exact||"),
    ("/ctx/some/thing.w", b"/ctx|/some/thing.w|"),
    ("/ctx/wsgi/caf%C3%A9", "/ctx/wsgi|/café|".encode("utf-8")),
])
def test_wsgi_servlet_script_name_and_path_info_under_validator(tree, path, expect):
    status, _, body = get(tree.port, path)
    assert status == 200 and body == expect


def test_wsgi_streaming_result(tree):
    status, headers, body = get(tree.port, "/ctx/stream")
    assert status == 201 and body == b"ab"


def test_error_pages_by_code_and_exception(tmp_path):
    files = {"WEB-INF/web.xml": """<web-app>
      <servlet><servlet-name>boom</servlet-name><servlet-class>test_webapp_servlets:Boom</servlet-class></servlet>
      <servlet-mapping><servlet-name>boom</servlet-name><url-pattern>/boom</url-pattern></servlet-mapping>
      <servlet><servlet-name>tea</servlet-name><servlet-class>test_webapp_servlets:Teapot</servlet-class></servlet>
      <servlet-mapping><servlet-name>tea</servlet-name><url-pattern>/tea</url-pattern></servlet-mapping>
      <error-page><error-code>404</error-code><location>/errors/404.html</location></error-page>
      <error-page><exception-type>ArithmeticError</exception-type><location>/errors/math.html</location></error-page>
    </web-app>""", "errors/404.html": "custom not found", "errors/math.html": "custom math"}
    t = Tree(tmp_path, contexts={"/app": {"files": files}})
    try:
        assert get(t.port, "/app/missing") == (404, get(t.port, "/app/missing")[1], b"custom not found")
        status, _, body = get(t.port, "/app/boom")
        assert (status, body) == (500, b"custom math")           # ZeroDivisionError is an ArithmeticError
        status, _, body = get(t.port, "/app/tea")
        assert status == 418 and b"HTTP Status 418" in body    # no page for 418: the report
    finally:
        t.stop()


def test_examples_app_from_the_repository(tmp_path):
    shutil.copytree(f"{REPO}/webapps/examples", tmp_path / "webapps" / "examples")
    shutil.copytree(f"{REPO}/webapps/ROOT", tmp_path / "webapps" / "ROOT")
    t = Tree(tmp_path, contexts={"/examples": {}, "": {}})
    try:
        assert get(t.port, "/examples/hello?name=pycat")[2] == b"Hello, pycat!\n"
        assert b"PATH_INFO = /x/y" in get(t.port, "/examples/wsgi/x/y")[2]
        assert get(t.port, "/examples/static.txt")[2].startswith(b"This is a static file")
        assert get(t.port, "/examples/fail")[0] == 500
        assert get(t.port, "/examples/hello")[0] == 200
        assert b"pycat examples" in get(t.port, "/examples/")[2]
        assert b"successfully installed pycat" in get(t.port, "/")[2]
        assert b"pycat status" in get(t.port, "/status")[2]
        # load-on-startup: the hello servlet exists before any request to it
        assert t.contexts["/examples"].find_child("hello").servlet is not None
        assert "examples_app" not in sys.modules and "root_status" not in sys.modules
    finally:
        t.stop()


class FailsMidStream(HttpServlet):
    def do_get(self, request, response):
        response.write("partial")
        response.flush()
        raise RuntimeError("after commit")


def test_exception_after_commit_cuts_the_response_and_server_goes_on(tmp_path):
    t = Tree(tmp_path, contexts={"": {"servlets": [("f", FailsMidStream(), ["/f"]), ("g", OnlyGet(), ["/g"])]}})
    try:
        data = raw_exchange(t.port, b"GET /f HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200") and b"partial" in data
        assert not data.endswith(b"0\r\n\r\n")          # no terminal chunk: the client sees a failure
        assert get(t.port, "/g")[0] == 200
    finally:
        t.stop()


class Text(HttpServlet):
    def do_get(self, request, response):
        response.content_type = "text/plain"
        response.write("é")


def test_context_encoding_and_root_without_redirect(tmp_path):
    t = Tree(tmp_path, contexts={"/app": {"servlets": [("t", Text(), [""])]}}, start=False)
    ctx = t.contexts["/app"]
    ctx.response_character_encoding = "ISO-8859-1"
    ctx.mapper_context_root_redirect = False
    t.server.start()
    try:
        status, headers, body = get(t.port, "/app")
        assert status == 200 and body == b"\xe9" and headers["content-type"] == "text/plain;charset=ISO-8859-1"
    finally:
        t.stop()


def test_missing_error_page_falls_back_to_the_report(tmp_path):
    files = {"WEB-INF/web.xml": "<web-app><error-page><error-code>404</error-code>"
                                "<location>/nope.html</location></error-page></web-app>"}
    t = Tree(tmp_path, contexts={"/app": {"files": files}})
    try:
        status, _, body = get(t.port, "/app/missing")
        assert status == 404 and b"HTTP Status 404" in body
    finally:
        t.stop()


TOMCAT_STYLE_CONF_WEB_XML = """<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0">
  <servlet><servlet-name>default</servlet-name>
    <servlet-class>org.apache.catalina.servlets.DefaultServlet</servlet-class>
    <init-param><param-name>debug</param-name><param-value>0</param-value></init-param>
    <init-param><param-name>listings</param-name><param-value>false</param-value></init-param>
    <load-on-startup>1</load-on-startup></servlet>
  <servlet><servlet-name>jsp</servlet-name>
    <servlet-class>org.apache.jasper.servlet.JspServlet</servlet-class><load-on-startup>3</load-on-startup></servlet>
  <servlet-mapping><servlet-name>default</servlet-name><url-pattern>/</url-pattern></servlet-mapping>
  <servlet-mapping><servlet-name>jsp</servlet-name><url-pattern>*.jsp</url-pattern></servlet-mapping>
  <mime-mapping><extension>txt</extension><mime-type>text/plain</mime-type></mime-mapping>
  <welcome-file-list><welcome-file>index.html</welcome-file><welcome-file>index.jsp</welcome-file></welcome-file-list>
</web-app>"""


def test_tomcat_conf_web_xml_works_unchanged(tmp_path):
    t = Tree(tmp_path, contexts={"/app": {"files": {"a.txt": "static"}}}, start=False, conf_web_xml=False)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "web.xml").write_text(TOMCAT_STYLE_CONF_WEB_XML)
    t.server.start()
    try:
        assert get(t.port, "/app/a.txt")[2] == b"static"
        status, _, body = get(t.port, "/app/page.jsp")
        assert status == 501 and b"not supported" in body
    finally:
        t.stop()


class Injects(HttpServlet):
    def do_get(self, request, response):
        response.set_header("X-Evil", "a\r\nSet-Cookie: pwned=1")
        response.write("x")


def test_header_injection_is_refused_with_500(tmp_path):
    t = Tree(tmp_path, contexts={"": {"servlets": [("i", Injects(), ["/i"]), ("g", OnlyGet(), ["/g"])]}})
    try:
        status, headers, _ = get(t.port, "/i")
        assert status == 500 and "set-cookie" not in headers
        assert get(t.port, "/g")[0] == 200
    finally:
        t.stop()
