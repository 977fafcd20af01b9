"""Flask adapter: ``flask.session`` is the container session.

In the app module (the WSGI servlet named in web.xml)::

    from pycat.adapters.flask import PycatSessionInterface
    app.session_interface = PycatSessionInterface()

Views keep using ``flask.session`` unchanged. No SECRET_KEY is needed and Flask sets no cookie of
its own: the container's JSESSIONID cookie carries the id, the data stays on the server (and in
the Manager's store / the cluster). ``session.permanent`` changes no timeout (the container's
rules decide) but, as Flask's own SessionMixin does, it is kept as a ``_permanent`` attribute of
the session, which therefore persists and replicates with it; ``session.modified`` is accepted and
ignored (changes are written through, and replication finds values changed in place by itself).
Outside pycat (no ``environ["pycat.session"]``) the interface falls back to Flask's null session.
A new session refused by maxActiveSessions is a 503 with the manager's message, as for servlets.
"""
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.exceptions import ServiceUnavailable

from pycat.adapters.base import ContainerSessionView
from pycat.session.errors import TooManyActiveSessions

ENVIRON_KEY = "pycat.session"


class ContainerSession(ContainerSessionView, SessionMixin):
    modified = False
    accessed = True

    def _for_write(self):
        try:
            return super()._for_write()
        except TooManyActiveSessions as exc:
            # the container answers 503 for its own servlets; say the same through Flask
            raise ServiceUnavailable(str(exc)) from None

    @property
    def new(self):
        """The container knows whether the session is new."""
        session = self.container_session
        return session is None or session.is_new

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]


class PycatSessionInterface(SessionInterface):
    def open_session(self, app, request):
        accessor = request.environ.get(ENVIRON_KEY)
        if accessor is None:
            return None   # Flask then uses its NullSession and explains what is missing
        return ContainerSession(accessor)

    def is_null_session(self, obj):
        return not isinstance(obj, ContainerSession)

    def save_session(self, app, session, response):
        pass   # written through to the container; the container sends the cookie


def install(app):
    """``app.session_interface = PycatSessionInterface()``; returns the app."""
    app.session_interface = PycatSessionInterface()
    return app
