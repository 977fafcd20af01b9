"""The member table a membership service keeps (Tomcat's ``Membership``): pure, no sockets.

Time comes from an injected clock (ms), so tests drive expiry by hand. The local member is never
part of the table. A member is *new* the first time it is heard of; hearing it again refreshes
its entry and copies the fields that change between heartbeats (alive time, payload, command,
domain) onto the stored instance, so listeners holding it see the update. ``members()`` is
sorted by alive time descending: the longest-running member first, which is the one
DeltaManager asks for the session state.

The table is bounded: with ``max_members`` set, a new member beyond that many is refused
(``member_alive`` returns None and counts it in ``refused``) while known members keep being
refreshed, so a flood of made-up member records cannot grow it without end.
"""
from pycat.tribes.member import now_ms

_UPDATED_FIELDS = ("alive_time", "payload", "command", "domain")


class Membership:
    """Members heard from, with the time each was last heard (clock ms)."""

    def __init__(self, local_member=None, clock=now_ms, max_members=None):
        self.local_member = local_member
        self.clock = clock
        #: new members beyond this many are refused (None or <= 0: no bound)
        self.max_members = max_members
        self.refused = 0
        self._last_heard = {}  # Member -> ms
        self._stored = {}  # Member -> the stored instance (dict keys compare by identity fields only)
        self._sorted = None

    def member_alive(self, member, now=None):
        """Record a heartbeat from member; True when the member is new, False when it was known
        (or is the local member), None when it is new but the table is full (not recorded)."""
        if member == self.local_member:
            return False
        now = self.clock() if now is None else now
        stored = self._stored.get(member)
        if stored is None and self.max_members and self.max_members > 0 and len(self._stored) >= self.max_members:
            self.refused += 1
            return None
        self._last_heard[member] = now
        if stored is None:
            self._stored[member] = member
            self._sorted = None
            return True
        if stored is not member:
            for field in _UPDATED_FIELDS:
                value = getattr(member, field)
                if getattr(stored, field) != value:
                    setattr(stored, field, value)
                    if field == "alive_time":
                        self._sorted = None
        return False

    def remove(self, member):
        """Forget member; the stored instance if it was known, else None."""
        stored = self._stored.pop(member, None)
        if stored is not None:
            del self._last_heard[member]
            self._sorted = None
        return stored

    def expire(self, now, drop_time):
        """Remove and return the members not heard from for more than drop_time ms."""
        if now is None:
            now = self.clock()
        gone = [m for m, heard in self._last_heard.items() if now - heard > drop_time]
        return [self.remove(m) for m in gone]

    def members(self):
        """Known members, longest-running first (a new list each time; the caller may keep it)."""
        if self._sorted is None:
            self._sorted = sorted(self._stored.values(), key=lambda m: m.alive_time, reverse=True)
        return list(self._sorted)

    def has_members(self):
        return bool(self._stored)

    def get_member(self, member):
        """The stored instance equal to member (same host, port and unique id), or None."""
        return self._stored.get(member)

    def find(self, host=None, port=None, unique_id=None):
        """The first member matching every given field, or None."""
        for m in self._stored.values():
            if ((host is None or m.host == host) and (port is None or m.port == port)
                    and (unique_id is None or m.unique_id == unique_id)):
                return m
        return None

    def last_heard(self, member):
        return self._last_heard.get(member)

    def __len__(self):
        return len(self._stored)

    def __contains__(self, member):
        return member in self._stored

    def clear(self):
        """Forget everyone; returns who was known."""
        gone = list(self._stored.values())
        self._stored.clear()
        self._last_heard.clear()
        self._sorted = None
        return gone
