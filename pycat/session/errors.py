"""The errors the session model raises on purpose."""
from pycat.errors import PycatError


class NotSerializableError(PycatError, ValueError):
    """An attribute value of a distributable app cannot be serialised (dill refused it)."""

    def __init__(self, name, value, reason=None):
        self.name = name
        self.value_type = "%s.%s" % (type(value).__module__, type(value).__qualname__)
        message = ("session attribute %r: a value of type %s cannot be serialised, and this "
                   "application is distributable" % (name, self.value_type))
        if reason:
            message += " (%s)" % reason
        super().__init__(message)


class TooManyActiveSessions(PycatError, RuntimeError):
    """create_session() was refused: the manager already holds maxActiveSessions sessions."""

    def __init__(self, max_active_sessions, manager_name=None):
        self.max_active_sessions = max_active_sessions
        where = " in %s" % manager_name if manager_name else ""
        super().__init__("cannot create a new session%s: maxActiveSessions (%d) reached"
                         % (where, max_active_sessions))


class InvalidSessionError(PycatError, RuntimeError):
    """The session was used after it was invalidated or expired (Tomcat's IllegalStateException)."""
