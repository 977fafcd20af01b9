"""Django session engine: ``request.session`` is the container session.

settings.py: ``SESSION_ENGINE = "pycat.adapters.django"`` and Django's
``SessionMiddleware`` as usual. Keep ``SESSION_COOKIE_NAME`` at Django's default ("sessionid"):
the container's cookie (JSESSIONID) carries the id; Django never sets a cookie of its own because
this store reports itself unmodified (every change is already written to the container session).

Django builds the store as ``SessionStore(session_key)`` without the request, so the store finds
the request the current greenlet serves (pycat.core.session_support.current_request()).
Mapping of Django's API: ``cycle_key()`` -> the container's change_session_id (login fixation
defence, as django.contrib.auth.login calls it); ``flush()`` -> invalidate; ``set_expiry(n)`` ->
the session's max inactive interval (seconds; 0 = the container default); values are stored as
they are (no JSON), so a distributable app's values must be dill-serialisable.
"""
import logging

from django.contrib.sessions.backends.base import SessionBase

from pycat.core.session_accessor import SessionAccessor
from pycat.core.session_support import current_request
from pycat.adapters.base import ContainerSessionView

log = logging.getLogger(__name__)


class SessionStore(SessionBase):
    def __init__(self, session_key=None):
        super().__init__(None)
        request = current_request()
        if request is None:
            log.warning("pycat Django session engine used outside a pycat request: sessions are not kept")
        self._view = ContainerSessionView(SessionAccessor(request) if request is not None else None)

    # Django marks changes to save them later; ours are written through already
    @property
    def modified(self):
        return False

    @modified.setter
    def modified(self, value):
        pass

    @property
    def _session(self):
        self.accessed = True
        return self._view

    @property
    def session_key(self):
        return self._view.session_id

    def is_empty(self):
        return len(self._view) == 0

    def clear(self):
        self.accessed = True
        self._view.clear()

    def exists(self, session_key):
        session = self._view.container_session
        return session is not None and session.id == session_key

    def create(self):
        self._view._for_write()

    def save(self, must_create=False):
        if must_create:
            self.create()

    def delete(self, session_key=None):
        session = self._view.container_session
        if session is not None and (session_key is None or session_key == session.id):
            session.invalidate()

    def load(self):
        return self._view

    def flush(self):
        self.delete()

    def cycle_key(self):
        session = self._view.container_session
        if session is not None:
            session_request = current_request()
            if session_request is not None:
                session_request.change_session_id()
            else:
                session.manager.change_session_id(session)

    def set_expiry(self, value):
        if isinstance(value, int):
            session = self._view._for_write()
            session.max_inactive_interval = value if value > 0 else session.manager.max_inactive_interval
        else:
            log.debug("set_expiry(%r): only seconds are mapped to the container session", value)

    def get_expiry_age(self, **kwargs):
        session = self._view.container_session
        return session.max_inactive_interval if session is not None else self.get_session_cookie_age()

    @classmethod
    def clear_expired(cls):
        pass   # the container's background ticker expires sessions
