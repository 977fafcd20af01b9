"""Static membership: the members are listed in server.xml (Tomcat's StaticMembershipService, 9.0.11+).

    <Membership className="org.apache.catalina.tribes.membership.StaticMembershipService">
      <LocalMember uniqueId="{0,1,...,15}"/>                                   (optional)
      <Member host="10.0.0.2" port="4000" uniqueId="{1,2,...,15,0}"/>          (StaticMember)
    </Membership>

The local member is the ``<LocalMember>`` if given, else the listed ``<Member>`` whose host and port
are the receiver's (so every node can share one list), else a member with a random unique id.
Listed members equal to the local one are left out of the peer list.

Liveness differs from Tomcat, which pings listed members with RPC messages over the channel
itself (MSG_START / MSG_PING / MSG_STOP, replies carrying each peer's own member record). Here
liveness is a TCP connect probe of each listed member's receiver port (``connectTimeout``), as
Tomcat does before its RPCs; no channel round trip is needed, so this service depends on nothing
above it. Consequences: once both levels (MBR_RX and MBR_TX) are started, the listed members whose
port answers are added; every ``heartbeat()`` (the channel calls it) or, with ``useThread``,
every ``pingInterval`` ms the probe is repeated and members whose port has not answered for more
than ``expirationTime`` ms are removed. A stopping peer sends no goodbye, so its departure is
seen after expirationTime (TcpFailureDetector notices a failed send sooner). Peers appear with
the configured record (alive time 0, no payload), not the one they advertise. ``rpcTimeout`` is
accepted for configuration compatibility and unused. ``broadcast`` is a no-op, as in Tomcat.
"""
import logging

import gevent
from gevent import socket as gsocket

from pycat.attrs import Attr, ConversionError
from pycat.errors import LifecycleError
from pycat.tribes.member import Member
from pycat.tribes.membership.base import MBR_BOTH, MembershipService, resolve_host

log = logging.getLogger(__name__)


class StaticMember(Member):
    """A ``<Member>`` / ``<LocalMember>`` element: a member known from configuration."""

    host = Attr(bytes, None, "IP address, host name or {b,b,b,b} (0..255 or -128..127)")
    port = Attr(int, 0, "the member's receiver TCP port")
    secure_port = Attr(int, -1, "the member's secure port (-1: none)")
    udp_port = Attr(int, -1, "the member's UDP receiver port (-1: none)")
    domain = Attr(bytes, b"", "cluster domain: text or {1,2,3}")
    unique_id = Attr(bytes, None, "required: exactly 16 bytes written {0,1,...,15}")

    def __init__(self, host=None, port=0, secure_port=-1, domain=b"", unique_id=None, udp_port=-1):
        super().__init__(host, port, secure_port, udp_port, unique_id or bytes(16), domain)
        #: False until a uniqueId is configured (every listed member needs one)
        self.unique_id_set = unique_id is not None

    def __setattr__(self, name, value):
        try:
            if name == "host" and value is not None:
                value = resolve_host(value)   # a configured host name is resolved here, not by Member
            super().__setattr__(name, value)
        except ConversionError:
            raise
        except (TypeError, ValueError) as exc:
            attr = type(self).__dict__.get(name)
            xml = attr.xml_name if isinstance(attr, Attr) else name
            raise ConversionError("StaticMember %s=%r: %s" % (xml, value, exc)) from None
        if name == "unique_id":
            object.__setattr__(self, "unique_id_set", True)


class StaticMembershipService(MembershipService):
    connect_timeout = Attr(int, 500, "ms to wait for a member's TCP port to answer")
    expiration_time = Attr(int, 5000, "ms a member may stay unreachable before it is removed")
    rpc_timeout = Attr(int, 3000, "accepted for compatibility; liveness uses TCP probes, not RPC")
    use_thread = Attr(bool, False, "probe from an own greenlet every pingInterval ms, not on heartbeat")
    ping_interval = Attr(int, 1000, "ms between probes with useThread")

    def __init__(self):
        super().__init__()
        self.static_members = []
        self._configured_local = None
        self._pinging = False

    # -- configuration (server.xml children) ------------------------------------------------------
    def add_static_member(self, member):
        self.static_members.append(member)

    add_member = add_static_member

    def set_local_member(self, member):
        """The ``<LocalMember>``: this node's identity (host and ports come from the receiver)."""
        self._configured_local = member

    def set_local_member_properties(self, host, port, secure_port=-1, udp_port=-1):
        if self.local_member is None:
            address = resolve_host(host)
            chosen = self._configured_local or next(
                (m for m in self.static_members if m.host == address and m.port == port), None)
            if chosen is not None:
                for field in ("domain", "payload"):
                    if getattr(self, field):
                        setattr(chosen, field, getattr(self, field))
                self.use_local_member(chosen)
        super().set_local_member_properties(host, port, secure_port, udp_port)
        local = self.local_member
        # the shared list names this node too: it is not a peer
        self.static_members = [m for m in self.static_members
                               if not (m == local or m.unique_id == local.unique_id
                                       or (m.host == local.host and m.port == local.port))]

    # -- levels --------------------------------------------------------------------------------
    def _start_levels(self, level):
        if self._levels != MBR_BOTH:
            return  # like Tomcat, membership starts once both levels run
        missing = [m for m in self.static_members if not getattr(m, "unique_id_set", True) or m.host is None]
        if missing:
            raise LifecycleError("%s: static members need host and uniqueId (16 bytes {0,...,15}): %s"
                                 % (self.component_name, ", ".join(m.name for m in missing)))
        self.ping()
        if self.use_thread:
            self.spawn(self._ping_loop)

    def heartbeat(self):
        """The channel's heartbeat: probe the listed members (unless useThread does it)."""
        if not self.use_thread and self._levels == MBR_BOTH:
            self.ping()

    def _ping_loop(self):
        while True:
            gevent.sleep(self.ping_interval / 1000.0)
            self.ping()

    def ping(self):
        """Probe every listed member once: answering ones are (re)confirmed, long-silent ones expire."""
        if self._pinging:
            return  # a slow probe round is still running; don't pile up
        self._pinging = True
        try:
            probes = [(m, self.spawn(self.probe, m)) for m in self.static_members]
            gevent.joinall([g for _, g in probes], timeout=self.connect_timeout / 1000.0 + 1)
            for member, probe in probes:
                if probe.value and self._levels == MBR_BOTH and self.membership.member_alive(member):
                    log.info("%s: static member %s is reachable", self.component_name, member.name)
                    self.fire("member_added", member)
            self.expire(self.expiration_time)
        finally:
            self._pinging = False

    def probe(self, member):
        """True when the member's receiver port accepts a TCP connection within connectTimeout."""
        try:
            sock = gsocket.create_connection((member.hostname, member.port), timeout=self.connect_timeout / 1000.0)
        except OSError:
            return False
        sock.close()
        return True
