"""Session listeners and their dispatch (the servlet API's session listener interfaces).

A listener is any object; what it hears is decided by the methods it has, like the Java
interfaces a class implements:

=================================  ==========================================================
HttpSessionListener                ``session_created(event)``, ``session_destroyed(event)``
HttpSessionAttributeListener       ``attribute_added(event)``, ``attribute_replaced(event)``,
                                   ``attribute_removed(event)``
HttpSessionIdListener              ``session_id_changed(event, old_id)``
=================================  ==========================================================

Attribute *values* can also listen to what happens to them (looked up on the value's class):

=================================  ==========================================================
HttpSessionBindingListener         ``value_bound(event)``, ``value_unbound(event)``
HttpSessionActivationListener      ``session_will_passivate(event)``, ``session_did_activate(event)``
=================================  ==========================================================

A listener that raises is logged and skipped: it never breaks the request or the listeners
after it (Tomcat logs and carries on too).
"""
import logging

from pycat.appcode import abort, is_abort

log = logging.getLogger(__name__)

SESSION_METHODS = ("session_created", "session_destroyed")
ATTRIBUTE_METHODS = ("attribute_added", "attribute_replaced", "attribute_removed")
ID_METHODS = ("session_id_changed",)
LISTENER_METHODS = SESSION_METHODS + ATTRIBUTE_METHODS + ID_METHODS


class SessionEvent:
    """HttpSessionEvent: which session."""
    __slots__ = ("session",)

    def __init__(self, session):
        self.session = session

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, self.session.id)


class SessionBindingEvent(SessionEvent):
    """HttpSessionBindingEvent. For ``attribute_replaced`` ``value`` is the OLD value (servlet spec)."""
    __slots__ = ("name", "value")

    def __init__(self, session, name, value=None):
        self.session, self.name, self.value = session, name, value

    def __repr__(self):
        return "SessionBindingEvent(%s, %r)" % (self.session.id, self.name)


def is_session_listener(obj):
    return any(callable(getattr(obj, m, None)) for m in LISTENER_METHODS)


def safe_call(method, *args):
    """Call one listener method; log what it raises, never propagate (except to a greenlet kill)."""
    try:
        method(*args)
    except Exception:
        log.exception("session listener %s failed", getattr(method, "__qualname__", method))
    except BaseException as exc:
        # sys.exit()/KeyboardInterrupt in a listener (often on the background expiry tick) is the
        # app's failure too, not the node's end; a greenlet kill still propagates
        if not is_abort(exc):
            raise
        log.error("session listener %s failed", getattr(method, "__qualname__", method),
                  exc_info=abort(exc, "in a session listener"))


class SessionListeners:
    """The manager's listener list, indexed by method name so dispatch is a list walk.

    Registration order is kept; destroyed events go in reverse order, as Tomcat does, so a
    listener that set things up on create tears them down after the ones registered later.
    """

    def __init__(self):
        self._all = []
        self._by_method = {m: [] for m in LISTENER_METHODS}

    def add(self, listener):
        """Register a listener; False (and a warning) if it has none of the listener methods."""
        methods = [m for m in LISTENER_METHODS if callable(getattr(listener, m, None))]
        if not methods:
            log.warning("%r is not a session listener (it has none of %s); ignored",
                        listener, ", ".join(LISTENER_METHODS))
            return False
        self._all.append(listener)
        for m in methods:
            self._by_method[m].append(getattr(listener, m))
        return True

    def remove(self, listener):
        if listener not in self._all:
            return
        self._all.remove(listener)
        for m in LISTENER_METHODS:
            bound = getattr(listener, m, None)
            if bound is not None and bound in self._by_method[m]:
                self._by_method[m].remove(bound)

    def __iter__(self):
        return iter(list(self._all))

    def __len__(self):
        return len(self._all)

    def has(self, method):
        return bool(self._by_method[method])

    def fire(self, method, *args, reverse=False):
        handlers = self._by_method[method]
        if not handlers:
            return
        for handler in (reversed(handlers) if reverse else list(handlers)):
            safe_call(handler, *args)


def value_hook(value, method):
    """The bound method ``method`` of an attribute value if its class defines it, else None.

    Looked up on the class (like a Java interface) so plain data values cost one dict miss.
    """
    if value is None or not callable(getattr(type(value), method, None)):
        return None
    return getattr(value, method)
