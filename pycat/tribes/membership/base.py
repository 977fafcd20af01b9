"""What every membership service shares: the local member, the member table, listeners, start levels.

The contract the channel codes against (Tomcat's ``MembershipService``):

* ``set_local_member_properties(host, port, secure_port=-1, udp_port=-1)`` before start, from
  the receiver's bound address; ``local_member`` is then this node's Member.
* ``membership_listener``: an object with ``member_added(member)`` and
  ``member_disappeared(member)``; called from one dispatcher greenlet, in event order, so a slow
  listener (a TCP probe) never stalls the service; an exception is logged, never propagated.
* ``message_listener``: an object with ``message_received(channel_data)``, or a callable taking
  it; gets each decoded ChannelData broadcast from another member (multicast only).
* ``start_services(level)`` / ``stop_services(level)`` with Tomcat's levels MBR_RX (4) and
  MBR_TX (8) (Tomcat's ``start(int)`` / ``stop(int)``): the first level started starts the service
  (Lifecycle), a level that is already running raises LifecycleError (Tomcat's
  IllegalStateException); ``stop_services`` returns True once no level runs, and the service is
  then STOPPED. The plain Lifecycle ``start()`` / ``stop()`` start both levels / stop all.
  Subclasses open and close their own parts in ``_start_service`` / ``_stop_service`` and start
  and stop levels in ``_start_levels`` / ``_stop_levels``.
* ``get_members()`` (longest-running first), ``get_member(m)``, ``has_members()``,
  ``find_member_by_name(name)``, ``broadcast(data)``, the ``payload`` and ``domain`` attributes
  (mirrored onto the local member at once, so they go out with the next heartbeat).
* ``membership_message(channel_data)``: the coordinator offers each message that came in with
  the MULTICAST option here first; True means it was the service's own traffic and is consumed
  (only static membership sends any over TCP: static_protocol.py). The default takes nothing.
* ``deliver_pending(timeout)``: wait until the listener has been handed every event fired so far
  (a service that learns members while it starts waits on it, so they are members everywhere in
  the stack when its start returns).
* ``record_authenticator``: None, or an object with ``sign_record(member)`` and
  ``verify_record(member)`` (the AuthInterceptor installs itself here): a service that sends
  member records sends ``local_record()``, and one that receives them passes each through
  ``accept_record`` first, which ignores (and logs, once a minute per source) what does not verify.
"""
import ipaddress
import logging
import socket

import gevent
import gevent.event
import gevent.queue

from pycat.attrs import Attr
from pycat.errors import LifecycleError
from pycat.lifecycle import Lifecycle, LifecycleState
from pycat.tribes.limits import PeerLog
from pycat.tribes.member import Member, config_bytes, host_to_bytes, now_ms
from pycat.tribes.membership.membership import Membership

log = logging.getLogger(__name__)

MBR_RX = 4
MBR_TX = 8
MBR_BOTH = MBR_RX | MBR_TX


class MemberField(Attr):
    """An Attr mirrored onto the service's local member."""

    def __set__(self, obj, value):
        super().__set__(obj, value)
        member = obj.__dict__.get("local_member")
        if member is not None:
            setattr(member, self.name, obj.__dict__[self.name])


def resolve_host(host):
    """4 or 16 address bytes for what a member's host may be configured as: what host_to_bytes takes
    (bytes, an IP string, ``{b,b,b,b}``) or a host name, resolved here (DNS belongs to the I/O side;
    pycat.tribes.member stays pure). IPv4 is preferred, like Java's default."""
    if isinstance(host, str) and host.strip() and not host.strip().startswith("{"):
        name = host.strip()
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            try:
                infos = socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM)
            except OSError as exc:
                raise ValueError("cannot resolve host %r: %s" % (name, exc)) from None
            infos.sort(key=lambda info: info[0] != socket.AF_INET)
            return ipaddress.ip_address(infos[0][4][0].split("%")[0]).packed
    return host_to_bytes(host)


class MembershipService(Lifecycle):
    domain = MemberField(config_bytes, b"", "cluster domain: text (ISO-8859-1) or {1,2,3}")
    payload = MemberField(config_bytes, b"", "bytes carried in this member's record")

    def __init__(self):
        super().__init__()
        self.local_member = None
        self.membership_listener = None
        self.message_listener = None
        self.membership = Membership()
        self._levels = 0
        self._asked = MBR_BOTH           # the levels the next Lifecycle start brings up
        self._events = gevent.queue.Queue()
        self._dispatcher = None
        #: signs our member records and verifies the ones received (see the module docstring)
        self.record_authenticator = None
        #: member records ignored because they did not verify
        self.unauthenticated = 0
        self._peer_log = PeerLog(log, 60.0)

    # -- local member --------------------------------------------------------------------------
    def set_local_member_properties(self, host, port, secure_port=-1, udp_port=-1):
        """Describe this node with its receiver's address (Tomcat's setLocalMemberProperties)."""
        host = None if host is None else resolve_host(host)
        member = self.local_member
        if member is None:
            self.use_local_member(Member.local(host, port, secure_port, udp_port,
                                               domain=self.domain, payload=self.payload))
        else:
            member.host, member.port, member.secure_port, member.udp_port = host, port, secure_port, udp_port

    def use_local_member(self, member):
        member.is_local = True
        if member.service_start_time is None:
            member.service_start_time = now_ms()
        self.local_member = member
        self.membership.local_member = member

    def get_local_member(self, inc_alive_time=False):
        if inc_alive_time and self.local_member is not None:
            self.local_member.encode(refresh_alive=True)
        return self.local_member

    def local_record(self, command=None):
        """The local member's record for the wire, alive time refreshed (and signed, with an
        authenticator). With ``command``, the record of a copy carrying that command (the local
        member itself, the sender field of every message, keeps its own)."""
        member = self.local_member
        if command is not None:
            member = member.copy()
            member.command = command
        auth = self.record_authenticator
        if auth is None:
            return member.encode(refresh_alive=True)
        return auth.sign_record(member)

    def accept_record(self, member, source=None):
        """True when a received member record may be believed. With an authenticator, its
        signature is checked and stripped (listeners see the payload the member configured)."""
        auth = self.record_authenticator
        if auth is None:
            return True
        payload, why = auth.verify_record(member)
        if payload is None:
            self.unauthenticated += 1
            host = source[0] if source else member.hostname
            self._peer_log.warning(host, "%s: ignoring %s for %s from %s (AuthInterceptor authenticates "
                                   "membership)", self.component_name, why, member.name, source or "?")
            return False
        member.payload = payload
        return True

    # -- levels --------------------------------------------------------------------------------
    @property
    def levels(self):
        """The running levels (MBR_RX | MBR_TX bits)."""
        return self._levels

    def start_services(self, level):
        """Start the given levels; the first one starts the service (a failure there leaves it
        STOPPED, as a failed Lifecycle start does)."""
        if not level & MBR_BOTH:
            raise ValueError("invalid membership start level %r: use MBR_RX (4) and/or MBR_TX (8)" % level)
        level &= MBR_BOTH
        if level & self._levels:
            raise LifecycleError("%s: membership level %d already running"
                                 % (self.component_name, level & self._levels))
        if self.state is not LifecycleState.STARTED:
            self._asked = level
            try:
                self.start()
            finally:
                self._asked = MBR_BOTH
            return
        self._add_levels(level)

    def stop_services(self, level):
        """Stop the given levels; True when no level runs any more (the service is then STOPPED)."""
        level &= MBR_BOTH
        if not self._levels & ~level:
            self.stop()
            return True
        self._stop_levels(level & self._levels)
        self._levels &= ~level
        return False

    def _add_levels(self, level):
        self._levels |= level
        try:
            self._start_levels(level)
        except Exception:
            self._levels &= ~level   # a level that did not start is not stopped either
            raise

    def _start_levels(self, level):
        """Start the given levels (already added to ``levels``)."""

    def _stop_levels(self, level):
        """Stop the given running levels (still in ``levels``)."""

    def _start(self):
        if self.local_member is None:
            raise LifecycleError("%s: call set_local_member_properties() before start" % self.component_name)
        self._start_service()
        self._add_levels(self._asked)

    def _stop(self):
        running, self._levels = self._levels, 0
        self._stop_levels(running)
        self._stop_service()

    def _start_service(self):
        """Open what the service needs whatever the level (subclasses extend it)."""
        self.local_member.command = b""
        self.local_member.service_start_time = now_ms()
        self.membership.clear()
        self._events = gevent.queue.Queue()
        self._dispatcher = self.spawn(self._dispatch_loop)

    def _stop_service(self):
        """Close what ``_start_service`` opened, once no level runs."""
        self.membership.clear()

    # -- events --------------------------------------------------------------------------------
    def fire(self, name, member):
        """Queue ``member_added`` / ``member_disappeared`` for the membership listener."""
        self._events.put((name, member))

    def deliver_pending(self, timeout):
        """Wait at most ``timeout`` s until the listener was handed every event fired before this
        call; True if it was. Returns at once (False) when no dispatcher runs or when called from
        the dispatcher itself (a listener must never wait on its own delivery)."""
        dispatcher = self._dispatcher
        if dispatcher is None or dispatcher.dead or gevent.getcurrent() is dispatcher:
            return False
        delivered = gevent.event.Event()
        self._events.put((None, delivered))
        return delivered.wait(timeout)

    def membership_message(self, msg):
        """A ChannelData received with the MULTICAST option (module doc): True when it is this
        service's own and consumed. Nothing here is."""
        return False

    def _dispatch_loop(self):
        while True:
            name, member = self._events.get()
            if name is None:
                member.set()  # a deliver_pending marker: everything before it was handed over
                continue
            listener = self.membership_listener
            if listener is None:
                continue
            try:
                getattr(listener, name)(member)
            except Exception:
                log.exception("%s: membership listener failed in %s(%s)", self.component_name, name, member)

    def expire(self, max_silence, now=None):
        """Remove members silent for more than max_silence ms and report them."""
        now = self.membership.clock() if now is None else now
        for member in self.membership.expire(now, max_silence):
            log.info("%s: member %s expired (silent for more than %d ms)", self.component_name, member.name,
                     max_silence)
            self.fire("member_disappeared", member)

    # -- queries ---------------------------------------------------------------------------------
    def get_members(self):
        return self.membership.members()

    def get_member(self, member):
        return self.membership.get_member(member)

    def has_members(self):
        return self.membership.has_members()

    def find_member_by_name(self, name):
        return next((m for m in self.membership.members() if m.name == name), None)

    def broadcast(self, message):
        """Send option MULTICAST: only McastService can; elsewhere it is a no-op, as in Tomcat."""
        log.debug("%s: broadcast ignored (no multicast transport)", self.component_name)
