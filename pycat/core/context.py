"""Context: one web application (Tomcat's StandardContext).

On start the Context resolves its docBase, reads conf/web.xml (the defaults: default servlet,
MIME types, welcome files) and WEB-INF/web.xml over it, builds one Wrapper per servlet and the
ServletMap of its url-patterns, and instantiates the load-on-startup servlets. Its basic valve
refuses WEB-INF/ and META-INF/ (404, like Tomcat) and hands the request to the mapped Wrapper.
"""
import logging
import mimetypes
import os

from pycat.attrs import Attr
from pycat.core.container import ContainerBase
from pycat.core.mapper import ServletMap
from pycat.core import session_support
from pycat.core.pipeline import Valve
from pycat.core.wrapper import Wrapper
from pycat.lifecycle import LifecycleState
from pycat.webapp import web_xml
from pycat.webapp.loader import WebappLoader
from pycat.webapp.filters import run_servlet
from pycat.webapp.servlet_context import ServletContextMixin

log = logging.getLogger(__name__)

_STARTED = LifecycleState.STARTED


def _is_protected(rel):
    upper = rel[:10].upper()
    for prefix in ("/WEB-INF", "/META-INF"):
        if upper.startswith(prefix) and (len(rel) == len(prefix) or rel[len(prefix)] == "/"):
            return True
    return False


class StandardContextValve(Valve):
    def invoke(self, request, response):
        rel = request.servlet_path + (request.path_info or "")
        # only a path whose second character is W/w/M/m can name WEB-INF or META-INF: the common
        # case skips the call ("" in the string is True: a path shorter than 2 goes to the full test)
        if rel[1:2] in "WwMm" and _is_protected(rel):
            response.send_error(404)
            return
        context = self.container
        redirect = request.mapping_redirect
        if redirect is not None:
            if context.mapper_context_root_redirect:
                query = request.query_string
                response.send_redirect(redirect + ("?" + query if query else ""))
                return
            # serve "/ctx" as "/ctx/"
            request.wrapper, request.servlet_path, request.path_info, request.match_type = \
                context.servlet_map.match("/")
        if context._state is not _STARTED:      # state.available, without two property calls
            response.send_error(503, "The application is not available")
            return
        wrapper = request.wrapper
        if wrapper is None:
            response.send_error(404)
            return
        session_support.begin(request, response)
        try:
            hooks = context.request_hooks   # request listeners / authenticator (webapp.servlet_context)
            if hooks is None:
                wrapper.pipeline.first.invoke(request, response)
            else:
                hooks.invoke(wrapper, request, response)
        finally:
            session_support.end(request, response)


def context_path(value):
    """Tomcat's normalization (with its warnings): "/" → "" (ROOT), "a/" → "/a"."""
    text = str(value).strip()
    fixed = text.rstrip("/")
    if fixed and not fixed.startswith("/"):
        fixed = "/" + fixed
    if fixed != text:
        log.warning("Context path [%s] is not valid (use \"\" for ROOT or \"/name\"); using [%s]", text, fixed)
    return fixed


class Context(ServletContextMixin, ContainerBase):
    path = Attr(context_path, "", "Context path ('' is ROOT)")
    doc_base = Attr(str, None, "Application folder or WAR; relative to the Host's appBase")
    reloadable = Attr(bool, False, "Reload when WEB-INF/classes or lib change")
    cookies = Attr(bool, True, "Use cookies for session ids")
    session_cookie_name = Attr(str, "JSESSIONID", "Session cookie name")
    session_cookie_path = Attr(str, None, "Session cookie path (default: the context path)")
    session_cookie_domain = Attr(str, None, "Session cookie domain")
    session_cookie_path_uses_trailing_slash = Attr(bool, False, "Append / to the cookie path")
    use_http_only = Attr(bool, True, "HttpOnly on the session cookie")
    same_site_cookies = Attr(str, None, "SameSite of the session cookie (unset/none/lax/strict); "
                                        "<CookieProcessor sameSiteCookies> wins")
    cross_context = Attr(bool, False, "Kept for compatibility")
    privileged = Attr(bool, False, "Kept for compatibility")
    override = Attr(bool, False, "Kept for compatibility")
    swallow_output = Attr(bool, False, "Kept for compatibility")
    unpack_war = Attr(bool, True, "Expand this app's WAR", xml="unpackWAR")
    work_dir = Attr(str, None, "Work folder")
    mapper_context_root_redirect = Attr(bool, True, "Redirect /ctx to /ctx/")
    mapper_directory_redirect = Attr(bool, False, "Kept for compatibility (the default servlet redirects)")
    alt_dd_name = Attr(str, None, "Alternative deployment descriptor", xml="altDDName")
    distributable = Attr(bool, False, "Sessions may replicate (also set by <distributable/>)")
    use_relative_redirects = Attr(bool, True, "Location headers without scheme and host")
    send_redirect_body = Attr(bool, False, "Add a short body to redirects")
    request_character_encoding = Attr(str, None, "Default request body encoding")
    response_character_encoding = Attr(str, None, "Default response encoding")
    webapp_version = Attr(str, "", "## version of this app")
    fail_ctx_if_servlet_start_fails = Attr(bool, False, "A failing load-on-startup servlet fails the Context")
    log_effective_web_xml = Attr(bool, False, "Log the merged web.xml", xml="logEffectiveWebXml")
    anti_resource_locking = Attr(bool, False, "Kept for compatibility")
    allow_casual_multipart_parsing = Attr(bool, False, "Kept for compatibility")
    session_timeout = Attr(int, 30, "Session timeout in minutes (web.xml session-config wins)")
    config_file = Attr(str, None, "The context.xml this Context came from")
    allow_linking = Attr(bool, False, "Static files may be reached through symbolic links (never into "
                                      "WEB-INF/META-INF)")

    def __init__(self):
        super().__init__()
        self.parameters = {}
        self.watched_resources = []
        self.manager = None
        self.cookie_processor = None
        self.servlet_map = ServletMap()
        self.web_xml = None
        self.welcome_files = ["index.html", "index.htm"]
        self.mime_mappings = {}
        self.error_pages_by_code = {}
        self.error_pages_by_exception = {}
        self.default_error_page = None
        self.context_params = {}
        self.attributes = {}
        self.loader = None
        self.pipeline.set_basic(StandardContextValve())

    # Tomcat: a Context's name is its path unless set
    @property
    def name(self):
        return self.__dict__.get("_name") or self.path

    @name.setter
    def name(self, value):
        self.__dict__["_name"] = value

    # -- nested elements ---------------------------------------------------------------
    def add_parameter(self, name, value, override=True):
        self.parameters[name] = value

    def add_watched_resource(self, text):
        text = (text or "").strip()
        if text and text not in self.watched_resources:
            self.watched_resources.append(text)

    def set_manager(self, manager):
        self.manager = manager
        for attr in ("set_context", "set_container"):
            setter = getattr(manager, attr, None)
            if callable(setter):
                setter(self)
                break

    def set_cookie_processor(self, processor):
        """<CookieProcessor> (kept attributes; sameSiteCookies is used for the session cookie)."""
        self.cookie_processor = processor

    def background_process(self):
        super().background_process()
        session_support.background_process(self)

    def set_loader(self, loader):
        self.loader = loader

    def add_servlet(self, name, servlet_or_class, patterns=(), init_params=None, load_on_startup=-1):
        """Programmatic servlet registration (tests, embedded use): an instance or a class path."""
        if isinstance(servlet_or_class, str):
            wrapper = Wrapper(name, servlet_or_class, init_params, load_on_startup)
        else:
            wrapper = Wrapper(name, None, init_params, load_on_startup, servlet=servlet_or_class)
        self._programmatic.append((wrapper, list(patterns)))
        if self.state.available:
            self._install_wrapper(wrapper, patterns)
        return wrapper

    @property
    def _programmatic(self):
        return self.__dict__.setdefault("_prog", [])

    # -- paths -------------------------------------------------------------------------
    def get_doc_base_path(self):
        base = self.doc_base
        if base is None:
            base = self.path.strip("/").replace("/", "#") or "ROOT"
        base = os.path.expanduser(base)
        if not os.path.isabs(base):
            host = self.parent
            app_base = host.get_app_base_path() if host is not None and hasattr(host, "get_app_base_path") \
                else os.path.join(self.catalina_base, "webapps")
            base = os.path.join(app_base, base)
        return os.path.realpath(base)

    def get_real_path(self, path):
        """ServletContext.getRealPath: the file for a path inside this app, or None if outside it."""
        base = getattr(self, "doc_base_path", None) or self.get_doc_base_path()
        parts = [p for p in (path or "/").split("/") if p and p != "."]
        if ".." in parts:
            return None
        target = os.path.realpath(os.path.join(base, *parts))
        if target != base and not target.startswith(base.rstrip(os.sep) + os.sep):
            return None
        return target

    def get_mime_type(self, filename):
        dot = filename.rfind(".")
        if dot >= 0:
            found = self.mime_mappings.get(filename[dot + 1:].lower())
            if found:
                return found
        return mimetypes.guess_type(filename, strict=False)[0]

    def get_init_parameter(self, name, default=None):
        return self.context_params.get(name, self.parameters.get(name, default))

    # -- lifecycle -----------------------------------------------------------------------
    def _start(self):
        self.doc_base_path = self.get_doc_base_path()
        if not os.path.isdir(self.doc_base_path):
            log.warning("Context [%s]: docBase %s does not exist or is not a folder", self.path or "/",
                        self.doc_base_path)
        web = self._load_descriptors()
        self.web_xml = web
        self.welcome_files = web.welcome_files
        self.mime_mappings = web.mime_mappings
        self.context_params = {**self.parameters, **web.context_params}
        if web.distributable:
            self.distributable = True
        if web.session_timeout is not None:
            self.session_timeout = web.session_timeout
        self._index_error_pages(web.error_pages)
        if self.loader is None:
            self.loader = WebappLoader(os.path.join(self.doc_base_path, "WEB-INF"))
        self.loader.start()
        self.start_webapp(web)     # listeners (context_initialized), filters, authenticator
        self.servlet_map = ServletMap()
        self.children.clear()
        for sdef in web.servlets.values():
            wrapper = Wrapper(sdef.name, sdef.servlet_class, sdef.init_params, sdef.load_on_startup)
            self._install_wrapper(wrapper, [p for p, n in web.mappings if n == sdef.name])
        for wrapper, patterns in self._programmatic:
            self._install_wrapper(wrapper, patterns)
        for pattern, name in web.mappings:
            if name not in self.children:
                log.warning("Context [%s]: servlet-mapping %s names unknown servlet %s",
                            self.path or "/", pattern, name)
        super()._start()
        session_support.start_manager(self)
        self._load_on_startup()
        self._children_changed()
        log.info("Context [%s] started from %s (%d servlets)", self.path or "/", self.doc_base_path,
                 len(self.children))

    def _install_wrapper(self, wrapper, patterns):
        wrapper.parent = self
        self.children[wrapper.name] = wrapper
        for pattern in patterns:
            self.servlet_map.add(pattern, wrapper)
            wrapper.mappings.append(pattern)
        if self.state.available:
            wrapper.start()
            self._children_changed()

    def _load_on_startup(self):
        ordered = sorted((w for w in self.children.values() if w.load_on_startup >= 0),
                         key=lambda w: w.load_on_startup)
        for wrapper in ordered:
            try:
                wrapper.allocate()
            except Exception:
                log.exception("Context [%s]: servlet [%s] failed to load on startup",
                              self.path or "/", wrapper.name)
                if self.fail_ctx_if_servlet_start_fails:
                    raise

    def _stop(self):
        if self.manager is not None and hasattr(self.manager, "stop"):
            try:
                self.manager.stop()
            except Exception:
                log.exception("Context [%s]: stopping the manager failed", self.path or "/")
        super()._stop()
        self.stop_webapp()
        if self.loader is not None:
            self.loader.stop()
        self._children_changed()

    def _load_descriptors(self):
        defaults = None
        for base in (self.catalina_base, self.catalina_home):
            conf = os.path.join(base, "conf", "web.xml")
            if os.path.isfile(conf):
                defaults = web_xml.parse_web_xml(conf)
                break
        if defaults is None:
            defaults = web_xml.builtin_defaults()
        app_xml = os.path.join(self.doc_base_path, "WEB-INF", "web.xml")
        if self.alt_dd_name:
            app_xml = os.path.join(self.doc_base_path, self.alt_dd_name)
        if os.path.isfile(app_xml):
            app = web_xml.parse_web_xml(app_xml)
        else:
            app = web_xml.WebXml()
        web = web_xml.merge(defaults, app)
        if self.log_effective_web_xml:
            log.info("Context [%s] effective web.xml: %r", self.path or "/", web)
        return web

    # -- dispatch ---------------------------------------------------------------------------
    def dispatch(self, request, response, location, dispatcher_type="FORWARD"):
        """Serve ``location`` (a path inside this context) for this request, e.g. an error page.

        The request's mapping fields are switched to the target for the call and restored after.
        """
        path, _, query = location.partition("?")
        wrapper, servlet_path, path_info, kind = self.servlet_map.match(path or "/")
        if wrapper is None:
            raise LookupError("no servlet for %s in context [%s]" % (location, self.path or "/"))
        saved = (request.wrapper, request.servlet_path, request.path_info, request.match_type,
                 request.dispatcher_type)
        request.wrapper, request.servlet_path, request.path_info, request.match_type = \
            wrapper, servlet_path, path_info, kind
        request.dispatcher_type = dispatcher_type
        if dispatcher_type == "ERROR":
            response.prepare_error_dispatch()
        else:
            response.reset_buffer()
        try:
            servlet = wrapper.servlet or wrapper.allocate()
            run_servlet(wrapper, servlet, request, response)
        finally:
            (request.wrapper, request.servlet_path, request.path_info, request.match_type,
             request.dispatcher_type) = saved

    # -- error pages -----------------------------------------------------------------------
    def _index_error_pages(self, pages):
        self.error_pages_by_code = {}
        self.error_pages_by_exception = {}
        self.default_error_page = None
        for page in pages:
            if page.error_code is not None:
                self.error_pages_by_code[page.error_code] = page.location
            elif page.exception_type:
                self.error_pages_by_exception[page.exception_type] = page.location
            else:
                self.default_error_page = page.location

    def find_error_page_for_exception(self, exc):
        table = self.error_pages_by_exception
        if not table:
            return None
        for klass in type(exc).__mro__:
            module = klass.__module__
            if module.startswith("_pycat_webapp_"):
                module = module.partition(".")[2]     # the app's own name, without the loader's prefix
            for name in (module + "." + klass.__qualname__, klass.__qualname__,
                         module + ":" + klass.__qualname__):
                if name in table:
                    return table[name]
            if klass is Exception:
                for name in ("java.lang.Exception", "java.lang.Throwable"):
                    if name in table:
                        return table[name]
        return None

    def find_error_page_for_status(self, status):
        return self.error_pages_by_code.get(status) or self.default_error_page
