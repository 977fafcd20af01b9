"""Container-managed HTTP sessions: the model the cluster replicates (layer 3).

Session (session.py), ManagerBase/StandardManager (manager.py), listener dispatch (events.py),
ids (id_generator.py), pure cookie and URL-rewriting helpers (cookies.py), the SESSIONS.ser
format (persistence.py), attribute values to bytes and back (values.py, the only unpickler).
"""
from pycat.session.errors import InvalidSessionError, NotSerializableError, TooManyActiveSessions
from pycat.session.events import SessionBindingEvent, SessionEvent
from pycat.session.session import Session

__all__ = ["Session", "SessionEvent", "SessionBindingEvent", "NotSerializableError",
           "TooManyActiveSessions", "InvalidSessionError"]
