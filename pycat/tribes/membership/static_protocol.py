"""Static membership announcements: their wire form and what a received one means (pure, no sockets).

A static member tells the listed members about itself with one small ChannelData written straight
to each one's receiver port (static.py does the I/O). Tomcat's StaticMembershipProvider sends
MSG_START / MSG_PING / MSG_STOP RPCs over the channel for this; pycat's form is its own:

* options ``BYTE_MESSAGE | MULTICAST`` (plus ``USE_ACK | SYNCHRONIZED_ACK`` when the sender waits
  for the answer). Nothing else sent over TCP carries MULTICAST, so the receiving coordinator can
  hand these to its membership service (``membership_message``) before any interceptor sees them,
  at no cost for ordinary messages;
* message bytes ``MAGIC ‖ member record`` (member.py's record of the sender, signed by an
  AuthInterceptor when the channel has one). The record's *command* field says what it is:
  ``START_COMMAND`` (the sender's membership just started: a new incarnation), Tomcat's shutdown
  command ``BABY-ALEX`` (it is stopping) or anything else (a heartbeat ping). The kind travels inside
  the record so that a signature covers it.

A receiver believes an announcement only from a member it has listed itself (same host, port
and unique id), so a node nobody configured cannot join by announcing itself. What an accepted
announcement does to the member table is ``received``; what our own successful contact does is
``reached``. Both return the membership events to fire, in order.

The receiving side answers a START with a PING of its own before it ACKs (static.py), as Tomcat's
provider answers with its member: the starting node then holds each running member's real record
(alive time, payload) when its start returns, and with an AuthInterceptor (where an answering port
alone adds nobody) it has them as members at all.
"""
from pycat.errors import ProtocolError
from pycat.tribes.member import SHUTDOWN_PAYLOAD, Member

#: first bytes of an announcement's message: "PCSM" + format version 1 + a reserved byte
MAGIC = b"PCSM\x01\x00"
#: the record command of a START (a membership service that just started)
START_COMMAND = b"PYCAT-STATIC-START"

START, PING, STOP = "start", "ping", "stop"
ADDED, GONE = "member_added", "member_disappeared"


def encode(record):
    """The message bytes of an announcement carrying ``record`` (a member record's bytes)."""
    return MAGIC + bytes(record)


def is_announcement(data):
    return data[:len(MAGIC)] == MAGIC


def decode(data):
    """The sender's Member from an announcement's message bytes; ProtocolError if malformed."""
    if not is_announcement(data):
        raise ProtocolError("not a static membership announcement")
    return Member.decode(data[len(MAGIC):])


def kind_of(member):
    """START, STOP or PING, from the announced record's command."""
    if member.command == START_COMMAND:
        return START
    if member.command == SHUTDOWN_PAYLOAD:
        return STOP
    return PING


def listed(static_members, member):
    """The configured member with member's identity (host, port, unique id), or None."""
    for m in static_members:
        if m == member:
            return m
    return None


def _leaving(member):
    """A copy of member marked as shutting down: listeners (TcpFailureDetector) believe it at once."""
    gone = member.copy()
    gone.command = SHUTDOWN_PAYLOAD
    return gone


def received(membership, member, now=None):
    """Apply an announcement (already authenticated and from a listed member) to ``membership``;
    returns the events [(ADDED or GONE, member)] to fire.

    STOP removes the member. PING (re)confirms it: a new one is added, a known one refreshed with
    the record's alive time, payload and domain. START is a new incarnation: static members keep
    their identity across restarts, so a START from a member still in the table means it restarted
    (perhaps after a crash we never noticed) and lost whatever it held; listeners must see it leave
    and come back (a BackupManager's map, for one, then gives its sessions backups again)."""
    kind = kind_of(member)
    if kind == STOP:
        gone = membership.remove(member)
        return [] if gone is None else [(GONE, _leaving(gone))]
    member.command = b""
    events = []
    if kind == START:
        old = membership.remove(member)
        if old is not None:
            events.append((GONE, _leaving(old)))
    if membership.member_alive(member, now):
        events.append((ADDED, membership.get_member(member)))
    return events


def reached(membership, member, now=None, may_add=True):
    """Our own contact with a listed member succeeded: its port answers. The stored instance (which
    may carry the member's own record) is refreshed, never overwritten with the configured fields;
    with ``may_add``, a member not in the table is added (as configured). Returns the events to fire.

    Without may_add (a node that authenticates membership) only a signed announcement of the member
    brings it in: an answering port proves nothing about who listens there."""
    stored = membership.get_member(member)
    if stored is None and not may_add:
        return []
    if membership.member_alive(stored if stored is not None else member, now):
        return [(ADDED, member)]
    return []
