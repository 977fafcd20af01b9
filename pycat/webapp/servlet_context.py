"""The ServletContext half of a Context, and the per-request web application steps.

``ServletContextMixin`` is mixed into pycat.core.context.Context, so the object a servlet gets as
``config.context`` / ``self.servlet_context`` is the ServletContext: attributes (with
``context_attribute_*`` listener events), init parameters, resources inside the app
(``get_resource`` → a file path, ``get_resource_as_stream`` → an open binary file,
``get_resource_paths``), ``get_real_path``, and dispatchers.

At Context start ``start_webapp(web)`` loads the web.xml listeners (``context_initialized``), the
filters, and the Authenticator when there are security constraints; ``stop_webapp()`` undoes it
in reverse. When listeners want request events or an authenticator exists, the Context valve
hands each request to ``WebappRequestSteps.invoke`` instead of straight to the Wrapper.
"""
import logging
import os

from pycat.webapp.dispatcher import RequestDispatcher
from pycat.webapp.filters import build_filter_map
from pycat.webapp.listeners import ApplicationListeners

log = logging.getLogger(__name__)


class WebappRequestSteps:
    """Request listeners around, and the authenticator before, the Wrapper of each request."""

    __slots__ = ("listeners", "authenticator")

    def __init__(self, listeners, authenticator):
        self.listeners = listeners
        self.authenticator = authenticator

    def invoke(self, wrapper, request, response):
        listeners = self.listeners
        if listeners is not None:
            listeners.request_initialized(request)
        try:
            if self.authenticator is None or self.authenticator.check(request, response):
                wrapper.pipeline.first.invoke(request, response)
        finally:
            if listeners is not None:
                listeners.request_destroyed(request)


class ServletContextMixin:
    filter_map = None
    _filters = None
    request_hooks = None          # WebappRequestSteps, or None: nothing to do per request
    webapp_listeners = None
    authenticator = None

    # -- attributes ----------------------------------------------------------------------
    def get_attribute(self, name, default=None):
        return self.attributes.get(name, default)

    def set_attribute(self, name, value):
        if value is None:
            self.remove_attribute(name)
            return
        replaced = name in self.attributes
        old = self.attributes.get(name)
        self.attributes[name] = value
        if self.webapp_listeners is not None:
            self.webapp_listeners.attribute_changed("replaced" if replaced else "added", name,
                                                    old if replaced else value)

    def remove_attribute(self, name):
        if name in self.attributes:
            old = self.attributes.pop(name)
            if self.webapp_listeners is not None:
                self.webapp_listeners.attribute_changed("removed", name, old)

    @property
    def attribute_names(self):
        return list(self.attributes)

    @property
    def init_parameter_names(self):
        return list(self.context_params)

    @property
    def context_path(self):
        return self.path

    @property
    def servlet_context_name(self):
        web = self.web_xml
        return (web.display_name if web is not None else None) or self.path or "/"

    # -- resources -------------------------------------------------------------------------
    def get_resource(self, path):
        """The file for ``path`` ("/WEB-INF/x.cfg"), or None when it does not exist or is outside."""
        if not path or not path.startswith("/"):
            raise ValueError("resource path must start with '/': %r" % path)
        real = self.get_real_path(path)
        return real if real is not None and os.path.exists(real) else None

    def get_resource_as_stream(self, path):
        real = self.get_resource(path)
        if real is None or not os.path.isfile(real):
            return None
        return open(real, "rb")

    def get_resource_paths(self, path):
        """Entries directly under ``path`` ("/dir/"): files as "/dir/f", folders as "/dir/sub/"."""
        real = self.get_resource(path)
        if real is None or not os.path.isdir(real):
            return None
        base = path if path.endswith("/") else path + "/"
        return {base + name + ("/" if os.path.isdir(os.path.join(real, name)) else "")
                for name in os.listdir(real)}

    # -- dispatchers -------------------------------------------------------------------------
    def get_request_dispatcher(self, path):
        """A dispatcher for a context-relative path ("/x?a=1"), or None when nothing maps it."""
        if not path or not path.startswith("/"):
            return None
        if self.servlet_map.match(path.partition("?")[0])[0] is None:
            return None
        return RequestDispatcher(self, path=path)

    def get_named_dispatcher(self, name):
        wrapper = self.children.get(name)
        return RequestDispatcher(self, wrapper=wrapper) if wrapper is not None else None

    # -- lifecycle hooks (called by Context._start / _stop) ------------------------------
    def start_webapp(self, web):
        from pycat.realm.authenticator import Authenticator
        self.webapp_listeners = ApplicationListeners.load(self, [n for n in web.listeners if n])
        self.webapp_listeners.start()
        fmap = build_filter_map(self, web)
        self._filters = fmap                                   # every filter, for destroy()
        self.filter_map = fmap if fmap.mappings else None      # None: nothing to do per request
        if web.security_constraints or web.login_config is not None:
            self.authenticator = Authenticator(self, web.security_constraints, web.login_config,
                                               web.security_roles)
        listeners = self.webapp_listeners if self.webapp_listeners.request_listeners else None
        if listeners is not None or self.authenticator is not None:
            self.request_hooks = WebappRequestSteps(listeners, self.authenticator)

    def stop_webapp(self):
        self.request_hooks = None
        self.authenticator = None
        self.filter_map = None
        fmap, self._filters = self._filters, None
        if fmap is not None:
            fmap.destroy()
        listeners, self.webapp_listeners = self.webapp_listeners, None
        if listeners is not None:
            listeners.stop()
        # a new ServletContext per start, as Tomcat: nothing of this generation stays reachable
        self.attributes.clear()
