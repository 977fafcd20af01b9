"""Filters: web.xml <filter>/<filter-mapping> run around a servlet (Tomcat's ApplicationFilterChain).

A filter is a ``Filter`` subclass (or any object with ``do_filter``), or a plain function
``f(request, response, chain)``. It calls ``chain.do_filter(request, response)`` to go on (with
the same objects or wrappers of them: ``RequestWrapper``/``ResponseWrapper``), or answers
itself and does not. The chain ends in the servlet, an HttpServlet or a WSGI callable alike.

Which filters run, in order (the Servlet spec, as Tomcat's ApplicationFilterFactory does it):
first every mapping whose url-pattern matches the request path, in document order, then every
mapping whose servlet-name names the target servlet (``*`` = all); both only when the mapping's
dispatchers include the request's dispatcher type (REQUEST, FORWARD, INCLUDE, ERROR).
"""
import logging

from pycat.webapp.loader import abort, app_code, is_abort

log = logging.getLogger(__name__)


class Filter:
    """Base class: ``init(config)`` once at Context start, ``do_filter`` per request, ``destroy``."""

    config = None

    def init(self, config):
        self.config = config

    def get_init_parameter(self, name, default=None):
        return self.config.get_init_parameter(name, default) if self.config is not None else default

    def do_filter(self, request, response, chain):
        chain.do_filter(request, response)

    def destroy(self):
        pass


class FilterConfig:
    def __init__(self, filter_name, init_params, context):
        self.filter_name = filter_name
        self.init_params = dict(init_params or {})
        self.context = context

    @property
    def servlet_context(self):
        return self.context

    def get_init_parameter(self, name, default=None):
        return self.init_params.get(name, default)


class _FunctionFilter(Filter):
    def __init__(self, fn):
        self.fn = fn

    def do_filter(self, request, response, chain):
        self.fn(request, response, chain)


class FilterChain:
    """One pass through the filters of one dispatch, ending in ``servlet.service``."""

    __slots__ = ("filters", "servlet", "pos")

    def __init__(self, filters, servlet):
        self.filters = filters
        self.servlet = servlet
        self.pos = 0

    def do_filter(self, request, response):
        pos = self.pos
        if pos < len(self.filters):
            self.pos = pos + 1
            self.filters[pos].do_filter(request, response, self)
        else:
            self.servlet.service(request, response)


class _Delegate:
    """Forwards every attribute it does not define itself to the wrapped object."""

    def __init__(self, wrapped):
        object.__setattr__(self, "wrapped", wrapped)

    def __getattr__(self, name):
        return getattr(self.wrapped, name)

    def __setattr__(self, name, value):
        # a name the wrapped object has (and this class does not define) is set on the wrapped
        # object, so ``response.content_type = ...`` through a wrapper reaches the response
        if name not in self.__dict__ and not hasattr(type(self), name) and hasattr(self.wrapped, name):
            setattr(self.wrapped, name, value)
        else:
            object.__setattr__(self, name, value)


class RequestWrapper(_Delegate):
    """Subclass and override what should look different to the rest of the chain."""


class ResponseWrapper(_Delegate):
    """Subclass and override e.g. ``write``/``write_bytes`` to transform the body."""


def _match_url(pattern, path):
    if pattern == "/*" or pattern == path:
        return True
    if pattern.endswith("/*"):
        prefix = pattern[:-2]
        return path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/")
    if pattern.startswith("*."):
        slash = path.rfind("/")
        dot = path.rfind(".")
        return dot > slash and path[dot + 1:] == pattern[2:]
    if pattern == "" and path == "/":
        return True       # "" is the context root
    return False


class FilterMap:
    """The filters of one Context and their mappings (built at Context start)."""

    def __init__(self, mappings, filters_by_name):
        self.mappings = [m for m in mappings if m.filter_name in filters_by_name]
        for m in mappings:
            if m.filter_name not in filters_by_name:
                log.warning("filter-mapping names unknown filter %s", m.filter_name)
        self.filters = filters_by_name

    def __bool__(self):
        return bool(self.mappings)

    def match(self, path, servlet_name, dispatcher):
        found = []
        for m in self.mappings:
            if dispatcher in m.dispatchers and any(_match_url(p, path) for p in m.url_patterns):
                found.append(self.filters[m.filter_name])
        for m in self.mappings:
            if dispatcher in m.dispatchers and (servlet_name in m.servlet_names or "*" in m.servlet_names):
                found.append(self.filters[m.filter_name])
        return found

    def destroy(self):
        for name, flt in reversed(list(self.filters.items())):
            try:
                with app_code("destroying filter [%s]", name):
                    flt.destroy()
            except Exception:
                log.exception("Filter %s destroy() failed", name)


def build_filter_map(context, web):
    """Instantiate and init() every <filter> of ``web`` (a failure fails the Context, as in Tomcat)."""
    instances = {}
    try:
        for fdef in web.filters:
            obj = context.loader.load(fdef.filter_class)
            with app_code("creating filter [%s]", fdef.name):
                if isinstance(obj, type):
                    obj = obj()
                elif not hasattr(obj, "do_filter") and callable(obj):
                    obj = _FunctionFilter(obj)
            if not hasattr(obj, "do_filter"):
                raise TypeError("filter %s (%s) has no do_filter" % (fdef.name, fdef.filter_class))
            init = getattr(obj, "init", None)
            if init is not None:
                with app_code("in init() of filter [%s]", fdef.name):
                    init(FilterConfig(fdef.name, fdef.init_params, context))
            instances[fdef.name] = obj
    except BaseException:          # a kill too: the filters already made are destroyed
        FilterMap([], instances).destroy()
        raise
    return FilterMap(web.filter_mappings, instances)


def run_servlet(wrapper, servlet, request, response):
    """servlet.service behind the filters mapped for this request (the Wrapper's and dispatches' path).

    Everything below is app code (filters, the servlet, a WSGI app, its iterable and close()):
    a SystemExit/KeyboardInterrupt/... from it leaves as an AppAbort, which the callers treat
    as any exception of the servlet (a 500); a GreenletExit (the server stopping) passes."""
    try:
        fmap = getattr(wrapper.parent, "filter_map", None)
        if fmap:
            filters = fmap.match(request.servlet_path + (request.path_info or ""), wrapper.name,
                                 request.dispatcher_type)
            if filters:
                FilterChain(filters, servlet).do_filter(request, response)
                return
        servlet.service(request, response)
    except Exception:
        raise
    except BaseException as exc:
        if is_abort(exc):
            raise abort(exc, "serving %s %s" % (request.method, request.request_uri)) from None
        raise
