"""ContainerSessionView: a mapping over the container session that creates it on first write.

Reading an app's session when there is none must not create one (no cookie for anonymous
visitors); writing creates it. Every read and write goes through the session's own mapping methods,
so the session's AttributeObserver hears the app's reads and writes through the adapters too. ``accessor`` is a pycat.core.session_accessor.SessionAccessor (``session()`` / ``create()``).
"""
import collections.abc


class ContainerSessionView(collections.abc.MutableMapping):
    def __init__(self, accessor):
        self._accessor = accessor

    # the container session, or None without creating one
    @property
    def container_session(self):
        return self._accessor.session() if self._accessor is not None else None

    def _for_write(self):
        if self._accessor is None:
            raise RuntimeError("no pycat container session here: the app is not running inside pycat")
        return self._accessor.create()

    def __getitem__(self, key):
        session = self.container_session
        if session is None:
            raise KeyError(key)
        return session[key]

    def get(self, key, default=None):
        # one read of the session (Mapping.get would raise and catch a KeyError on every miss)
        session = self.container_session
        return default if session is None else session.get(key, default)

    def __setitem__(self, key, value):
        self._for_write()[key] = value

    def __delitem__(self, key):
        session = self.container_session
        if session is None:
            raise KeyError(key)
        del session[key]

    def __iter__(self):
        session = self.container_session
        return iter(session.attribute_names() if session is not None else ())

    def __len__(self):
        session = self.container_session
        return len(session) if session is not None else 0

    def __contains__(self, key):
        session = self.container_session
        return session is not None and key in session

    def clear(self):
        session = self.container_session
        if session is not None:
            for name in session.attribute_names():
                session.remove_attribute(name)

    @property
    def session_id(self):
        session = self.container_session
        return session.id if session is not None else None

    def __repr__(self):
        return "<%s of %r>" % (type(self).__name__, self.container_session)
