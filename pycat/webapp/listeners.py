"""Application listeners from web.xml <listener> (Tomcat's StandardContext.listenerStart).

A listener is an instance of the named class (or the named object itself when it is not a
class). It takes part in the events whose methods it has, duck-typed; the base classes below
only document the names:

* ``context_initialized(event)`` / ``context_destroyed(event)`` — Context start (before
  filters and load-on-startup servlets) and stop (after them, in reverse declaration order)
* ``request_initialized(event)`` / ``request_destroyed(event)`` — around each request that
  enters the application
* ``context_attribute_added/replaced/removed(event)`` — ServletContext attribute changes
* session listener methods: pycat.core.session_support registers those classes with the Manager

A listener raising in ``context_initialized`` (or ``request_initialized``) fails the Context start
(the request), as in Tomcat; what the other methods raise is logged. "Raising" includes
``sys.exit()`` and KeyboardInterrupt (pycat.webapp.loader.AppAbort): one app's listener never
ends the node.
"""
import logging

from pycat.webapp.loader import abort, app_code, is_abort

log = logging.getLogger(__name__)


class ServletContextEvent:
    def __init__(self, context):
        self.servlet_context = context


class ServletRequestEvent(ServletContextEvent):
    def __init__(self, context, request):
        super().__init__(context)
        self.servlet_request = request


class ServletContextAttributeEvent(ServletContextEvent):
    def __init__(self, context, name, value):
        super().__init__(context)
        self.name = name
        self.value = value


class ServletContextListener:
    def context_initialized(self, event):
        pass

    def context_destroyed(self, event):
        pass


class ServletRequestListener:
    def request_initialized(self, event):
        pass

    def request_destroyed(self, event):
        pass


class ApplicationListeners:
    def __init__(self, context, instances):
        self.context = context
        self.instances = list(instances)
        self.context_listeners = [i for i in instances if hasattr(i, "context_initialized")
                                  or hasattr(i, "context_destroyed")]
        self.request_listeners = [i for i in instances if hasattr(i, "request_initialized")
                                  or hasattr(i, "request_destroyed")]
        self.attribute_listeners = [i for i in instances if any(
            hasattr(i, "context_attribute_" + kind) for kind in ("added", "replaced", "removed"))]
        self.initialized = []

    @classmethod
    def load(cls, context, class_names):
        instances = []
        for name in class_names:
            obj = context.loader.load(name)
            if isinstance(obj, type):
                with app_code("creating listener %s", name):
                    obj = obj()
            instances.append(obj)
        return cls(context, instances)

    def start(self):
        event = ServletContextEvent(self.context)
        for listener in self.context_listeners:
            method = getattr(listener, "context_initialized", None)
            if method is not None:
                with app_code("in context_initialized of listener %r", listener):
                    method(event)
            self.initialized.append(listener)

    def stop(self):
        event = ServletContextEvent(self.context)
        for listener in reversed(self.initialized):
            method = getattr(listener, "context_destroyed", None)
            if method is None:
                continue
            try:
                with app_code("in context_destroyed of listener %r", listener):
                    method(event)
            except Exception:
                log.exception("Context [%s]: listener %r failed in context_destroyed",
                              self.context.path or "/", listener)
        self.initialized = []

    def request_initialized(self, request):
        event = ServletRequestEvent(self.context, request)
        for listener in self.request_listeners:
            method = getattr(listener, "request_initialized", None)
            if method is not None:
                try:
                    method(event)
                except Exception:
                    raise
                except BaseException as exc:     # per request: inline, not app_code()
                    if is_abort(exc):
                        raise abort(exc, "in request_initialized of listener %r" % (listener,)) from None
                    raise

    def request_destroyed(self, request):
        event = ServletRequestEvent(self.context, request)
        for listener in reversed(self.request_listeners):
            method = getattr(listener, "request_destroyed", None)
            if method is None:
                continue
            try:
                method(event)
            except Exception:
                log.exception("Context [%s]: listener %r failed in request_destroyed",
                              self.context.path or "/", listener)
            except BaseException as exc:
                if not is_abort(exc):
                    raise
                log.error("Context [%s]: listener %r failed in request_destroyed", self.context.path or "/",
                          listener, exc_info=abort(exc, "in request_destroyed"))

    def attribute_changed(self, kind, name, value):
        if not self.attribute_listeners:
            return
        event = ServletContextAttributeEvent(self.context, name, value)
        for listener in self.attribute_listeners:
            method = getattr(listener, "context_attribute_" + kind, None)
            if method is not None:
                try:
                    with app_code("in context_attribute_%s of listener %r", kind, listener):
                        method(event)
                except Exception:
                    log.exception("Context [%s]: attribute listener %r failed", self.context.path or "/",
                                  listener)
