"""WEB-INF/web.xml (and conf/web.xml) → plain dataclasses.

Read: <servlet> (servlet-name, servlet-class, init-param, load-on-startup), <servlet-mapping>
(one or more url-pattern), <welcome-file-list>, <mime-mapping>, <error-page> (error-code or
exception-type → location), <context-param>, <session-config> (session-timeout, cookie-config
name/path/domain/http-only/secure), <distributable/>, <display-name>; filters, filter mappings,
listeners and security elements are read by web_xml_ext. Namespaces (javaee, jakartaee, none) are
ignored: elements are matched by local name.

``merge(defaults, app)`` applies the app descriptor over conf/web.xml like Tomcat: servlets and
mappings of the app win by name / pattern, mime mappings are overlaid, welcome files of the app
replace the defaults when it declares any, error pages and context params add up.
"""
import dataclasses
import logging

from lxml import etree

from pycat import xmlsafe
from pycat.errors import ConfigError
from pycat.webapp import web_xml_ext

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ServletDef:
    name: str
    servlet_class: str = None
    init_params: dict = dataclasses.field(default_factory=dict)
    load_on_startup: int = -1


@dataclasses.dataclass
class ErrorPage:
    location: str
    error_code: int = None
    exception_type: str = None


@dataclasses.dataclass
class WebXml:
    display_name: str = None
    servlets: dict = dataclasses.field(default_factory=dict)          # name → ServletDef
    mappings: list = dataclasses.field(default_factory=list)          # (pattern, servlet name)
    welcome_files: list = dataclasses.field(default_factory=list)
    mime_mappings: dict = dataclasses.field(default_factory=dict)     # ext (lower) → type
    error_pages: list = dataclasses.field(default_factory=list)
    context_params: dict = dataclasses.field(default_factory=dict)
    session_timeout: int = None                                       # minutes
    session_cookie: dict = dataclasses.field(default_factory=dict)
    distributable: bool = False
    filters: list = dataclasses.field(default_factory=list)           # web_xml_ext.FilterDef
    listeners: list = dataclasses.field(default_factory=list)         # listener class names
    filter_mappings: list = dataclasses.field(default_factory=list)   # web_xml_ext.FilterMapping
    security_constraints: list = dataclasses.field(default_factory=list)
    login_config: object = None                                       # web_xml_ext.LoginConfig
    security_roles: list = dataclasses.field(default_factory=list)


def _local(el):
    tag = el.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _children(el, name):
    return [c for c in el if _local(c) == name]


def _text(el, name, default=None):
    for c in el:
        if _local(c) == name:
            return (c.text or "").strip()
    return default


def parse_web_xml(source, name=None):
    """Parse a path or bytes. Raises ConfigError naming the file, line and column."""
    where = name or (source if isinstance(source, str) else "web.xml")
    try:
        # no entities, DTD loading or network (xmlsafe): a DOCTYPE declaring entities is refused
        root = xmlsafe.parse(source, where)
    except etree.XMLSyntaxError as exc:
        line, col = exc.position if exc.position else (None, None)
        raise ConfigError("malformed XML (line %s, column %s): %s" % (line, col, exc.msg),
                          file=where, line=line) from None
    except OSError as exc:
        raise ConfigError("cannot read: %s" % exc, file=where) from None
    web = WebXml()
    web.display_name = _text(root, "display-name")
    for el in root:
        kind = _local(el)
        if kind == "servlet":
            sdef = ServletDef(_text(el, "servlet-name"), _text(el, "servlet-class"))
            for p in _children(el, "init-param"):
                sdef.init_params[_text(p, "param-name")] = _text(p, "param-value", "")
            los = _text(el, "load-on-startup")
            if los:
                try:
                    sdef.load_on_startup = int(los)
                except ValueError:
                    raise ConfigError("load-on-startup %r is not an integer" % los, file=where,
                                      line=el.sourceline, element="servlet") from None
            elif los == "":
                sdef.load_on_startup = 0
            if not sdef.servlet_class and _text(el, "jsp-file") is None:
                raise ConfigError("servlet %r has no servlet-class" % sdef.name, file=where,
                                  line=el.sourceline, element="servlet")
            web.servlets[sdef.name] = sdef
        elif kind == "servlet-mapping":
            servlet = _text(el, "servlet-name")
            for p in _children(el, "url-pattern"):
                web.mappings.append(((p.text or "").strip(), servlet))
        elif kind == "welcome-file-list":
            web.welcome_files = [(w.text or "").strip() for w in _children(el, "welcome-file")]
        elif kind == "mime-mapping":
            ext = _text(el, "extension")
            if ext:
                web.mime_mappings[ext.lower()] = _text(el, "mime-type")
        elif kind == "error-page":
            code = _text(el, "error-code")
            web.error_pages.append(ErrorPage(_text(el, "location"),
                                             int(code) if code else None,
                                             _text(el, "exception-type")))
        elif kind == "context-param":
            web.context_params[_text(el, "param-name")] = _text(el, "param-value", "")
        elif kind == "session-config":
            timeout = _text(el, "session-timeout")
            if timeout:
                web.session_timeout = int(timeout)
            for cc in _children(el, "cookie-config"):
                for c in cc:
                    web.session_cookie[_local(c)] = (c.text or "").strip()
        elif kind == "distributable":
            web.distributable = True
        elif kind in web_xml_ext.ELEMENTS:
            web_xml_ext.parse_element(web, kind, el, where)
    for pattern, servlet in web.mappings:
        if servlet not in web.servlets:
            log.debug("%s: mapping %s names servlet %s defined elsewhere", where, pattern, servlet)
    return web


def merge(defaults, app):
    """The effective descriptor: app over defaults (see module doc)."""
    out = WebXml()
    out.display_name = app.display_name
    out.servlets = {**defaults.servlets, **app.servlets}
    app_patterns = {p for p, _ in app.mappings}
    out.mappings = [m for m in defaults.mappings if m[0] not in app_patterns] + list(app.mappings)
    out.welcome_files = list(app.welcome_files or defaults.welcome_files)
    out.mime_mappings = {**defaults.mime_mappings, **app.mime_mappings}
    out.error_pages = list(defaults.error_pages) + list(app.error_pages)
    out.context_params = {**defaults.context_params, **app.context_params}
    out.session_timeout = app.session_timeout if app.session_timeout is not None else defaults.session_timeout
    out.session_cookie = {**defaults.session_cookie, **app.session_cookie}
    out.distributable = app.distributable
    web_xml_ext.merge_into(out, defaults, app)
    return out


def builtin_defaults():
    """What conf/web.xml gives when the file is missing: the default servlet on "/"."""
    web = WebXml()
    web.servlets["default"] = ServletDef("default", "pycat.webapp.default_servlet:DefaultServlet",
                                         {"listings": "false"}, 1)
    web.mappings.append(("/", "default"))
    web.welcome_files = ["index.html", "index.htm"]
    web.session_timeout = 30
    return web
