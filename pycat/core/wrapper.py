"""Wrapper: one servlet of a Context (Tomcat's StandardWrapper).

The servlet is instantiated on first use, or at Context start when ``load_on_startup >= 0``.
The basic valve calls ``servlet.service(request, response)``; an exception becomes a 500
(the exception is kept as a request attribute for <error-page exception-type> and the
ErrorReportValve) and the connection goes on serving; a BadRequest (the client's malformed
body) becomes a 400.
"""
import logging

import gevent.lock

from pycat.attrs import Attr
from pycat.core.container import ContainerBase
from pycat.core.pipeline import Valve
from pycat.errors import EXCEPTION_ATTR, BadRequest
from pycat.webapp.filters import run_servlet
from pycat.webapp.loader import abort, app_code, is_abort

log = logging.getLogger(__name__)


class StandardWrapperValve(Valve):
    def invoke(self, request, response):
        wrapper = self.container
        try:
            servlet = wrapper.servlet or wrapper.allocate()
            if getattr(wrapper.parent, "filter_map", None) is None:
                # run_servlet() for a Context without filters, inline (once per request)
                try:
                    servlet.service(request, response)
                except Exception:
                    raise
                except BaseException as exc:
                    if is_abort(exc):     # app code's sys.exit() & co: a failure of this request
                        raise abort(exc, "serving %s %s" % (request.method, request.request_uri)) from None
                    raise
            else:
                run_servlet(wrapper, servlet, request, response)     # behind the mapped filters
        except BadRequest as exc:
            # the client's malformed body, not a servlet failure: 400 and one line, no stack trace
            # (Tomcat's BadRequestException); the connection closes after this response
            log.info("Bad request body for servlet [%s] in context [%s]: %s", wrapper.name,
                     request.context_path, exc)
            if not response.committed:
                response.send_error(400)
            else:
                response.abort()
        except Exception as exc:
            log.error("Servlet.service() for servlet [%s] in context [%s] threw exception",
                      wrapper.name, request.context_path, exc_info=True)
            request.set_attribute(EXCEPTION_ATTR, exc)
            if not response.committed:
                response.send_error(500)
            else:
                # headers are out: all we can do is cut the connection so the client sees a failure
                response.abort()


class Wrapper(ContainerBase):
    name = Attr(str, None, "servlet-name")
    servlet_class = Attr(str, None, "module:Class, dotted class or module:callable (WSGI)")
    load_on_startup = Attr(int, -1, "Instantiate at Context start when >= 0, in ascending order")

    def __init__(self, name=None, servlet_class=None, init_params=None, load_on_startup=-1,
                 servlet=None):
        super().__init__()
        if name is not None:
            self.name = name
        if servlet_class is not None:
            self.servlet_class = servlet_class
        self.load_on_startup = load_on_startup
        self.init_params = dict(init_params or {})
        self.servlet = servlet          # a ready instance (tests, the default servlet)
        self.mappings = []
        self._lock = gevent.lock.RLock()
        self.pipeline.set_basic(StandardWrapperValve())

    @property
    def context(self):
        return self.parent

    def allocate(self):
        """The servlet instance, created and init()-ed once (concurrent first calls wait)."""
        with self._lock:
            if self.servlet is None:
                from pycat.webapp.servlet import instantiate_servlet
                servlet = instantiate_servlet(self.servlet_class, self.parent)
                with app_code("in init() of servlet [%s]", self.name):     # sys.exit() there: AppAbort
                    servlet.init(ServletConfig(self))
                self.servlet = servlet
        return self.servlet

    def get_init_parameter(self, name, default=None):
        return self.init_params.get(name, default)

    def _start(self):
        pass   # no children, no pipeline valves besides the basic one

    def _stop(self):
        servlet, self.servlet = self.servlet, None
        if servlet is not None:
            try:
                with app_code("in destroy() of servlet [%s]", self.name):
                    servlet.destroy()
            except Exception:
                log.exception("Servlet %s destroy() failed", self.name)


class ServletConfig:
    """What a servlet's init(config) receives."""

    def __init__(self, wrapper):
        self.wrapper = wrapper
        self.servlet_name = wrapper.name
        self.init_params = wrapper.init_params
        self.context = wrapper.parent

    def get_init_parameter(self, name, default=None):
        return self.init_params.get(name, default)
