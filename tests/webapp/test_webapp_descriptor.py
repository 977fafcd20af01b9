"""web.xml parsing/merging and the per-app module loader."""
import sys

import pytest

from pycat.errors import ConfigError
from pycat.webapp import web_xml
from pycat.webapp.loader import WebappLoader

WEB_XML = b"""<?xml version="1.0"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0">
  <display-name>Demo</display-name>
  <distributable/>
  <context-param><param-name>colour</param-name><param-value>blue</param-value></context-param>
  <servlet>
    <servlet-name>hello</servlet-name>
    <servlet-class>app:Hello</servlet-class>
    <init-param><param-name>greeting</param-name><param-value>Hi</param-value></init-param>
    <load-on-startup>3</load-on-startup>
  </servlet>
  <servlet-mapping><servlet-name>hello</servlet-name><url-pattern>/hello</url-pattern>
    <url-pattern>*.hi</url-pattern></servlet-mapping>
  <welcome-file-list><welcome-file>start.html</welcome-file></welcome-file-list>
  <mime-mapping><extension>MD</extension><mime-type>text/x-md</mime-type></mime-mapping>
  <error-page><error-code>404</error-code><location>/404.html</location></error-page>
  <error-page><exception-type>ValueError</exception-type><location>/value.html</location></error-page>
  <session-config><session-timeout>15</session-timeout>
    <cookie-config><name>SID</name><http-only>true</http-only></cookie-config></session-config>
</web-app>"""


def test_parse_records_everything_this_version_uses():
    web = web_xml.parse_web_xml(WEB_XML)
    assert web.display_name == "Demo" and web.distributable
    assert web.context_params == {"colour": "blue"}
    hello = web.servlets["hello"]
    assert (hello.servlet_class, hello.init_params, hello.load_on_startup) == ("app:Hello", {"greeting": "Hi"}, 3)
    assert web.mappings == [("/hello", "hello"), ("*.hi", "hello")]
    assert web.welcome_files == ["start.html"]
    assert web.mime_mappings == {"md": "text/x-md"}
    assert [(p.error_code, p.exception_type, p.location) for p in web.error_pages] == \
        [(404, None, "/404.html"), (None, "ValueError", "/value.html")]
    assert web.session_timeout == 15 and web.session_cookie == {"name": "SID", "http-only": "true"}


def test_merge_over_defaults():
    defaults = web_xml.parse_web_xml("conf/web.xml")
    merged = web_xml.merge(defaults, web_xml.parse_web_xml(WEB_XML))
    assert set(merged.servlets) == {"default", "hello"}
    assert ("/", "default") in merged.mappings and ("/hello", "hello") in merged.mappings
    assert merged.welcome_files == ["start.html"]
    assert merged.mime_mappings["css"] == "text/css" and merged.mime_mappings["md"] == "text/x-md"
    assert merged.session_timeout == 15


def test_malformed_xml_names_line_and_column():
    with pytest.raises(ConfigError, match=r"line 3, column"):
        web_xml.parse_web_xml(b"<web-app>\n<servlet>\n</web-app>", name="bad.xml")


def test_servlet_without_class_is_an_error():
    with pytest.raises(ConfigError, match="no servlet-class"):
        web_xml.parse_web_xml(b"<web-app><servlet><servlet-name>x</servlet-name></servlet></web-app>")


def make_app(tmp_path, name, value):
    classes = tmp_path / name / "WEB-INF" / "classes"
    (classes / "pkg").mkdir(parents=True)
    (classes / "app.py").write_text("import pkg.helper\nVALUE = %r\nHELPER = pkg.helper.WHO\n" % value)
    (classes / "pkg" / "__init__.py").write_text("")
    (classes / "pkg" / "helper.py").write_text("WHO = %r\n" % name)
    return WebappLoader(str(tmp_path / name / "WEB-INF"))


def test_two_apps_with_the_same_module_names_stay_apart(tmp_path):
    path_before = list(sys.path)
    one, two = make_app(tmp_path, "one", 1), make_app(tmp_path, "two", 2)
    try:
        assert one.load("app:VALUE") == 1 and two.load("app.VALUE") == 2
        assert one.load("app:HELPER") == "one" and two.load("app:HELPER") == "two"
        assert "app" not in sys.modules and "pkg" not in sys.modules
        assert sys.path == path_before
        assert one.load("pycat.webapp.servlet:HttpServlet").__name__ == "HttpServlet"
        one.stop()
        assert one.modules == {}
    finally:
        # both: a loader left running keeps its _pycat_webapp_* modules in sys.modules, which
        # the deploy tests (rightly) count as a leak
        one.stop()
        two.stop()
    assert not [k for k in sys.modules if k.startswith(("_pycat_webapp_one", "_pycat_webapp_two"))]
