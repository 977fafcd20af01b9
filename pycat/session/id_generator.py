"""Session ids: random, unguessable, optionally suffixed with the node's ``.jvmRoute``.

Format (Tomcat's StandardSessionIdGenerator): ``sessionIdLength`` random bytes from ``secrets``
written as UPPERCASE hex (16 bytes -> 32 characters), then ``.`` + jvmRoute when the Engine has
one, so a load balancer with sticky sessions can route on the suffix.

``parse_session_id`` validates an id that arrived from a client: only ``[A-Za-z0-9]`` for the
random part, optionally ``.route`` (``[A-Za-z0-9_-]``), bounded length. Anything else is not an
error, just "no session" -- forged ids get a fresh session.
"""
import logging
import re
import secrets

from pycat.attrs import Attr

log = logging.getLogger(__name__)

#: the longest id we look up (a 128-byte id is 256 hex chars; routes are short)
MAX_ID_LENGTH = 320
_ID_RE = re.compile(r"([A-Za-z0-9]{1,256})(?:\.([A-Za-z0-9_\-]{1,63}))?\Z")


class SessionIdGenerator:
    """``<SessionIdGenerator>``: Tomcat's org.apache.catalina.util.StandardSessionIdGenerator."""

    session_id_length = Attr(int, 16, "number of random bytes in a session id (hex doubles it)")
    jvm_route = Attr(str, None, "route suffix appended as .jvmRoute (normally set from the Engine)")
    secure_random_algorithm = Attr(str, None, "accepted for Tomcat compatibility; Python's secrets is always used")
    secure_random_class = Attr(str, None, "accepted for Tomcat compatibility; ignored")
    secure_random_provider = Attr(str, None, "accepted for Tomcat compatibility; ignored")

    def generate_session_id(self, route=None, length=None):
        """A new id; ``route`` (or self.jvm_route) is appended after a dot when set."""
        length = length or self.session_id_length
        if length < 1:
            raise ValueError("sessionIdLength must be at least 1, not %r" % length)
        body = secrets.token_hex(length).upper()
        route = route if route is not None else self.jvm_route
        return "%s.%s" % (body, route) if route else body


def parse_session_id(value):
    """(id, route or None) for a well-formed id, else None. Never raises."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        return None
    m = _ID_RE.match(value)
    if m is None:
        return None
    return value, m.group(2)


def is_valid_session_id(value):
    return parse_session_id(value) is not None


def strip_route(session_id):
    """The id without its ``.route`` suffix (JvmRouteBinderValve rewrites the suffix)."""
    return session_id.split(".", 1)[0]
