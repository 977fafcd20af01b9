"""Session: one user's server-side state (Tomcat's StandardSession).

Times are float seconds from ``manager.clock`` (``time.time`` unless a test injects one).
``max_inactive_interval`` is in seconds; ``<= 0`` means the session never expires.

Every read of an attribute goes through ``_read`` (``get_attribute``, ``[]``, ``get``, ``in``)
or ``attribute_names`` (iteration, ``keys``; ``items``/``values`` come through both), every write
through ``set_attribute`` and every removal through ``_remove_attribute_internal``. Those three
places report to the session's ``observer`` (an AttributeObserver, or None: then the cost is one
attribute check): replication records a request's changes from the writes and removals, and finds
values changed in place by comparing a digest of each value it heard read with its digest at the
end of the request. ``track=False`` applies a change without reporting it (a replicated change must
not be re-recorded); the container's own reads (serialisers, passivation) use ``raw_attributes``
and are not reported either.
"""
import collections.abc
import logging

from pycat.session.errors import InvalidSessionError
from pycat.session.events import SessionBindingEvent, SessionEvent, safe_call, value_hook

log = logging.getLogger(__name__)

_MISSING = object()


class AttributeObserver:
    """What a session reports about its attributes (every method is optional to override).

    ``attribute_read(session, name, value)``: the app learned the attribute: its value, its
    presence (``in``) or its name (iteration). Heard for present attributes only, and possibly
    more than once per request (``items()`` reads each name and then its value): an observer
    keeps the first thing it heard if that matters (a digest taken before any change in place).
    ``attribute_written(session, name, value, old)``: the value is stored; ``old`` is the value
    it replaced or None. ``attribute_removed(session, name, old)``: the attribute is gone.
    Writes and removals are reported after the change and before the listeners run; a write
    made with ``track=False`` is not reported. ``len()`` identifies no attribute and reports nothing.
    """
    __slots__ = ()

    def attribute_read(self, session, name, value):
        pass

    def attribute_written(self, session, name, value, old):
        pass

    def attribute_removed(self, session, name, old):
        pass


class Session(collections.abc.MutableMapping):
    # slots: 100k sessions must fit in modest memory; the cluster subclass adds its own
    __slots__ = ("manager", "id", "creation_time", "last_accessed_time", "this_accessed_time",
                 "max_inactive_interval", "is_new", "is_primary", "access_count",
                 "principal", "auth_type", "_valid", "_expiring", "_attributes", "_notes",
                 "observer", "__weakref__")

    def __init__(self, manager):
        self.manager = manager
        self.id = None
        now = manager.clock()
        self.creation_time = self.last_accessed_time = self.this_accessed_time = now
        self.max_inactive_interval = manager.max_inactive_interval
        self.is_new = True
        self.is_primary = True  # the cluster marks backup copies False
        self.access_count = 0
        self.principal = None
        self.auth_type = None
        self._valid = False
        self._expiring = False
        self._attributes = {}
        self._notes = None  # created on first use: most sessions never get a note
        # the manager's, when it has one (a replicating manager); None costs reads one check
        self.observer = manager.attribute_observer

    # -- identity ----------------------------------------------------------------------------
    # a session is itself, not "a mapping equal to another with the same attributes"
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __bool__(self):
        # `if session:` means "is there a session", not "does it hold attributes"
        return True

    def __repr__(self):
        return "<Session %s%s>" % (self.id, "" if self._valid else " invalid")

    def set_id(self, new_id, notify=True):
        """Re-key this session in its manager; ``notify`` fires session_created (new sessions)."""
        manager = self.manager
        if self.id is not None:
            manager.remove(self)
        self.id = new_id
        manager.add(self)
        if notify:
            self.tell_new()

    def tell_new(self):
        self.manager.listeners.fire("session_created", SessionEvent(self))

    def tell_changed_session_id(self, new_id, old_id, notify=True):
        if notify:
            self.manager.listeners.fire("session_id_changed", SessionEvent(self), old_id)

    # -- validity and time ---------------------------------------------------------------------
    @property
    def valid(self):
        """Valid without the expiry check (Tomcat's isValidInternal)."""
        return self._valid

    @valid.setter
    def valid(self, value):
        self._valid = bool(value)

    @property
    def is_valid(self):
        """False once invalidated; an idle session past its interval is expired here (Tomcat)."""
        if not self._valid:
            return False
        if self._expiring:
            return True
        if self.max_inactive_interval > 0 and self.idle_time() >= self.max_inactive_interval:
            self.expire(True)
        return self._valid

    def idle_time(self):
        return self.manager.clock() - self.this_accessed_time

    def access(self):
        """A request started using this session."""
        self.this_accessed_time = self.manager.clock()
        self.access_count += 1

    def end_access(self):
        """The request finished: the session is no longer new and its idle clock restarts."""
        self.is_new = False
        self.this_accessed_time = self.last_accessed_time = self.manager.clock()
        if self.access_count > 0:
            self.access_count -= 1

    def invalidate(self):
        if not self._valid:
            raise InvalidSessionError("invalidate: session %s is already invalidated" % self.id)
        self.expire()

    def expire(self, notify=True):
        """Destroy the session: destroyed listeners (attributes still readable), drop it from
        the manager, then unbind every attribute (unbound + attribute_removed if ``notify``)."""
        if not self._valid or self._expiring:
            return
        self._expiring = True
        try:
            if notify:
                self.manager.listeners.fire("session_destroyed", SessionEvent(self), reverse=True)
            self.access_count = 0
            self.manager.remove(self, update=True)
            self._valid = False
        finally:
            self._expiring = False
        for name in list(self._attributes):
            self._remove_attribute_internal(name, notify, track=False)

    # -- attributes --------------------------------------------------------------------------
    def _check_valid(self, what):
        if not self._valid:
            raise InvalidSessionError("%s: session %s has been invalidated" % (what, self.id))

    def _read(self, name):
        """The one read of one attribute: its value or _MISSING, reported to the observer."""
        if not self._valid:
            raise InvalidSessionError("get_attribute: session %s has been invalidated" % self.id)
        value = self._attributes.get(name, _MISSING)
        if value is not _MISSING:
            observer = self.observer
            if observer is not None:
                observer.attribute_read(self, name, value)
        return value

    def get_attribute(self, name, default=None):
        value = self._read(name)
        return default if value is _MISSING else value

    def attribute_names(self):
        """The names (a snapshot); with an observer, each attribute counts as read."""
        self._check_valid("attribute_names")
        names = list(self._attributes)
        observer = self.observer
        if observer is not None:
            attributes = self._attributes
            for name in names:
                observer.attribute_read(self, name, attributes[name])
        return names

    def set_attribute(self, name, value, notify=True, track=True):
        """Bind value to name. None removes (servlet rule). In a distributable app a value that
        cannot be serialised raises NotSerializableError before anything changes."""
        if name is None:
            raise ValueError("session attribute name must not be None")
        if value is None:
            self.remove_attribute(name, notify, track)
            return
        self._check_valid("set_attribute")
        manager = self.manager
        if track and manager.distributable:
            manager.check_serializable(name, value)
        attributes = self._attributes
        old = attributes.get(name)
        unchanged = old is value
        if notify and (not unchanged or manager.notify_binding_listener_on_unchanged_value):
            bound = value_hook(value, "value_bound")
            if bound is not None:
                safe_call(bound, SessionBindingEvent(self, name, value))
        attributes[name] = value
        if track:
            observer = self.observer
            if observer is not None:
                observer.attribute_written(self, name, value, old)
        if not notify:
            return
        if old is not None and (not unchanged or manager.notify_binding_listener_on_unchanged_value):
            unbound = value_hook(old, "value_unbound")
            if unbound is not None:
                safe_call(unbound, SessionBindingEvent(self, name, old))
        if unchanged and not manager.notify_attribute_listener_on_unchanged_value:
            return
        if old is None:
            manager.listeners.fire("attribute_added", SessionBindingEvent(self, name, value))
        else:
            manager.listeners.fire("attribute_replaced", SessionBindingEvent(self, name, old))

    def remove_attribute(self, name, notify=True, track=True):
        self._check_valid("remove_attribute")
        self._remove_attribute_internal(name, notify, track)

    def _remove_attribute_internal(self, name, notify, track):
        value = self._attributes.pop(name, _MISSING)
        if value is _MISSING:
            return
        if track:
            observer = self.observer
            if observer is not None:
                observer.attribute_removed(self, name, value)
        if not notify:
            return
        event = SessionBindingEvent(self, name, value)
        unbound = value_hook(value, "value_unbound")
        if unbound is not None:
            safe_call(unbound, event)
        self.manager.listeners.fire("attribute_removed", event)

    # -- the MutableMapping protocol over attributes ----------------------------------------
    def __getitem__(self, name):
        value = self._read(name)
        if value is _MISSING:
            raise KeyError(name)
        return value

    def get(self, name, default=None):
        # Mapping.get would go through __getitem__ and a KeyError for every miss
        value = self._read(name)
        return default if value is _MISSING else value

    def __setitem__(self, name, value):
        self.set_attribute(name, value)

    def __delitem__(self, name):
        self._check_valid("remove_attribute")
        if name not in self._attributes:
            raise KeyError(name)
        self._remove_attribute_internal(name, True, True)

    def __iter__(self):
        return iter(self.attribute_names())

    def __len__(self):
        self._check_valid("attribute_names")
        return len(self._attributes)

    def __contains__(self, name):
        return self._read(name) is not _MISSING

    # -- notes: container-private data, never shown to the app nor persisted ----------------
    def get_note(self, name, default=None):
        return self._notes.get(name, default) if self._notes else default

    def set_note(self, name, value):
        if self._notes is None:
            self._notes = {}
        self._notes[name] = value

    def remove_note(self, name):
        if self._notes:
            self._notes.pop(name, None)

    def note_names(self):
        return list(self._notes) if self._notes else []

    # -- passivation (save/transfer) ----------------------------------------------------------
    def passivate(self):
        """Tell values about to be serialised (HttpSessionActivationListener)."""
        self._fire_activation("session_will_passivate")

    def activate(self):
        """Tell values just deserialised."""
        self._fire_activation("session_did_activate")

    def _fire_activation(self, method):
        event = None
        for value in list(self._attributes.values()):
            hook = value_hook(value, method)
            if hook is not None:
                if event is None:
                    event = SessionEvent(self)
                safe_call(hook, event)

    # -- raw state for codecs (no checks, no events) -------------------------------------------
    def raw_attributes(self):
        """The attribute dict itself, for the container's serialisers (not reported to the
        observer: app code must use the mapping methods); do not mutate."""
        return self._attributes
