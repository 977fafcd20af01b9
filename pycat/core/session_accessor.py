"""SessionAccessor: ``environ["pycat.session"]``, the request's session as a lazy dict.

The WSGI face of pycat.core.session_support (which creates it for every WSGI request and names it
too); every operation goes through session_support.get_session / change_session_id.
"""
import collections.abc

from pycat.core import session_support


class SessionAccessor(collections.abc.MutableMapping):
    """``environ["pycat.session"]``: the request's session as a lazy dict (as Beaker's
    ``environ["beaker.session"]``)::

        environ["pycat.session"]["count"] = environ["pycat.session"].get("count", 0) + 1

    Reading (``[]``, ``get``, ``in``, ``len``, iteration, ``keys``/``items``/``values``) never
    creates a session: without one the accessor reads as empty (``[]`` raises KeyError). Writing
    (``[]=``, ``setdefault`` of a missing key, ``update`` with items) creates one, with its
    Set-Cookie. ``del`` / ``pop`` / ``clear`` without a session raise KeyError / return the default /
    do nothing, creating nothing. Every read and write goes through the Session's own mapping
    methods (``Session._read`` underneath), so its AttributeObserver hears them.

    Outside the Mapping protocol (names no dict has):

    * ``session(create=False)``: the Session object, or None (with ``create``: a new one if needed);
      calling the accessor, ``accessor(create=False)``, is the same.
    * ``create()``: the Session, created if there is none.
    * ``exists`` (property): whether the request has a valid session; creates nothing.
    * ``id`` (property): the session id, or None; creates nothing.
    * ``invalidate()``: invalidate the session if there is one (True if there was).
    * ``change_id(new_id=None)``: a new id for the existing session (login), returns it.

    Until 0.x ``get(create=...)`` returned the Session; ``get(key, default)`` now has its dict
    meaning: use ``session(create=...)``.
    """
    __slots__ = ("request",)

    def __init__(self, request):
        self.request = request

    # -- the session itself ---------------------------------------------------------------------
    def session(self, create=False):
        return session_support.get_session(self.request, create)

    __call__ = session

    def create(self):
        return session_support.get_session(self.request, True)

    @property
    def exists(self):
        return session_support.get_session(self.request, False) is not None

    @property
    def id(self):
        session = session_support.get_session(self.request, False)
        return session.id if session is not None else None

    def invalidate(self):
        session = session_support.get_session(self.request, False)
        if session is None:
            return False
        session.invalidate()
        return True

    def change_id(self, new_id=None):
        return session_support.change_session_id(self.request, new_id)

    # -- the Mapping protocol over the session's attributes -----------------------------------
    def __getitem__(self, key):
        session = session_support.get_session(self.request, False)
        if session is None:
            raise KeyError(key)
        return session[key]

    def get(self, key, default=None):
        # one read (Mapping.get would raise and catch a KeyError on every miss)
        session = session_support.get_session(self.request, False)
        return default if session is None else session.get(key, default)

    def __contains__(self, key):
        session = session_support.get_session(self.request, False)
        return session is not None and key in session

    def __iter__(self):
        session = session_support.get_session(self.request, False)
        return iter(session.attribute_names() if session is not None else ())

    def __len__(self):
        session = session_support.get_session(self.request, False)
        return len(session) if session is not None else 0

    def __setitem__(self, key, value):
        session_support.get_session(self.request, True)[key] = value

    def __delitem__(self, key):
        session = session_support.get_session(self.request, False)
        if session is None:
            raise KeyError(key)
        del session[key]

    _MISSING = object()

    def pop(self, key, default=_MISSING):
        session = session_support.get_session(self.request, False)
        value = session.get(key, self._MISSING) if session is not None else self._MISSING
        if value is self._MISSING:
            if default is self._MISSING:
                raise KeyError(key)
            return default
        del session[key]
        return value

    def setdefault(self, key, default=None):
        session = session_support.get_session(self.request, False)
        if session is not None:
            value = session.get(key, self._MISSING)
            if value is not self._MISSING:
                return value
        self[key] = default
        return default

    def clear(self):
        session = session_support.get_session(self.request, False)
        if session is not None:
            for name in session.attribute_names():
                session.remove_attribute(name)

    def __repr__(self):
        return "<SessionAccessor %r>" % (self.request,)
