"""Static membership: the members are listed in server.xml (Tomcat's StaticMembershipService, 9.0.11+).

    <Membership className="org.apache.catalina.tribes.membership.StaticMembershipService">
      <LocalMember uniqueId="{0,1,...,15}"/>                                   (optional)
      <Member host="10.0.0.2" port="4000" uniqueId="{1,2,...,15,0}"/>          (StaticMember)
    </Membership>

The local member is the ``<LocalMember>`` if given, else the listed ``<Member>`` whose host and port
are the receiver's (so every node can share one list), else a member with a random unique id.
Listed members equal to the local one are left out of the peer list.

Like Tomcat's StaticMembershipProvider, the service announces itself to the listed members; the
messages are pycat's own (static_protocol.py: a small ChannelData written straight to each
member's receiver port, not Tomcat's RPCs over the channel, so the service depends on nothing
above the receiver):

* **start** (once both levels, MBR_RX and MBR_TX, run): a START goes to every listed member at
  once, and the start waits for each one's answer (its ACK, at most ``rpcTimeout`` ms; a member
  whose port does not accept within ``connectTimeout`` ms counts as down). The members whose port
  answered are members, and the listener has been handed them, when the start returns, so a
  DeltaManager starting next finds them and asks for the sessions. The receiving side adds the
  newcomer, lets its own listener take it in, and sends it a PING carrying its own record before
  it answers (so the newcomer holds each member's real record, alive time and payload, when its
  start returns). A START from a member the receiving side still knew means that member
  restarted: it is reported gone, then added. A node alone starts as fast as before: refused
  connections fail at once.
* **heartbeat** (the channel's, or every ``pingInterval`` ms with ``useThread``): a PING to every
  listed member; one whose port answers is (re)confirmed, one heard from by neither our pings nor
  its own for more than ``expirationTime`` ms is removed. A PING received from a listed member
  that is not in the table adds it at once.
* **stop**: a STOP goes to the members in the table, and the stop waits (at most ``rpcTimeout`` ms)
  for their answers, so they have dropped this node when its receiver closes. A crashed node sends
  nothing: it goes after expirationTime (TcpFailureDetector notices a failed send sooner).

Only listed members are believed: an announcement whose record is not one of ``<Member>`` (host,
port and unique id) is ignored and logged. With an AuthInterceptor in the channel the records are
signed, unsigned or badly signed ones are ignored, and a member joins only through its own signed
announcement (its START, its PING, or its answer to ours), never because its port answers.
Without one, an answering port is enough (as with Tomcat's probe), so peers that do not announce
themselves are still found. Peers appear with the record they announced (alive time, payload,
domain) once one arrived, else with the configured one (alive time 0, no payload). ``broadcast``
is a no-op, as in Tomcat.
"""
import logging

import gevent
from gevent import socket as gsocket

from pycat.attrs import Attr, ConversionError
from pycat.errors import LifecycleError, ProtocolError
from pycat.tribes import channel as ch
from pycat.tribes.io import framing
from pycat.tribes.io.channel_data import ChannelData
from pycat.tribes.member import SHUTDOWN_PAYLOAD, Member
from pycat.tribes.membership import static_protocol as sp
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


_ANNOUNCE = ch.BYTE_MESSAGE | ch.MULTICAST
_ANSWERED = ch.USE_ACK | ch.SYNCHRONIZED_ACK


def _read_answer(sock):
    """True when the peer ACKed the frame just written (it processed it), False on FAIL_ACK, a
    close or anything else."""
    want = len(framing.ACK_FRAME)
    got = b""
    while len(got) < want:
        chunk = sock.recv(want - len(got))
        if not chunk:
            return False
        got += chunk
    return got == framing.ACK_FRAME


class StaticMembershipService(MembershipService):
    connect_timeout = Attr(int, 500, "ms to wait for a member's TCP port to answer")
    expiration_time = Attr(int, 5000, "ms a member may stay unheard before it is removed")
    rpc_timeout = Attr(int, 3000, "ms a starting or stopping node waits for the members' answers (<= 0: not at all)")
    use_thread = Attr(bool, False, "ping from an own greenlet every pingInterval ms, not on heartbeat")
    ping_interval = Attr(int, 1000, "ms between pings with useThread")

    def __init__(self):
        super().__init__()
        self.static_members = []
        self._configured_local = None
        self._pinging = False
        self._joined = False

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
        self._join()
        if self.use_thread:
            self.spawn(self._ping_loop)

    def _stop_levels(self, level):
        if self._joined:
            self._joined = False   # either level stopping ends the membership (as _start_levels begins it)
            self._leave()

    def _join(self):
        """START to every listed member, waiting for the answers (module doc); then wait until the
        listener has the members that answered."""
        self._joined = True
        answer = self._answer_timeout()
        self._round(sp.START_COMMAND, self.static_members, answer)
        # the listener (the channel's stack) gets its events from the dispatcher greenlet: let it
        # catch up, so the members are everywhere in the stack when the channel's start returns
        self.deliver_pending(answer or self.connect_timeout / 1000.0)

    def _leave(self):
        """STOP to the members we know, waiting (bounded) for their answers."""
        known = [m for m in self.static_members if m in self.membership]
        if known and self.local_member is not None:
            self._round(SHUTDOWN_PAYLOAD, known, self._answer_timeout(), confirm=False)
            log.info("%s: told %d static members that this node leaves", self.component_name, len(known))

    def _answer_timeout(self):
        return self.rpc_timeout / 1000.0 if self.rpc_timeout > 0 else None

    def heartbeat(self):
        """The channel's heartbeat: ping the listed members (unless useThread does it)."""
        if not self.use_thread and self._levels == MBR_BOTH:
            self.ping()

    def _ping_loop(self):
        while True:
            gevent.sleep(self.ping_interval / 1000.0)
            self.ping()

    def ping(self):
        """PING every listed member once: the ones whose port answers are (re)confirmed, members
        unheard for more than expirationTime expire."""
        if self._pinging:
            return  # a slow round is still running; don't pile up
        self._pinging = True
        try:
            self._round(b"", self.static_members, None)
            self.expire(self.expiration_time)
        finally:
            self._pinging = False

    # -- contacting the listed members -----------------------------------------------------------
    def _round(self, command, members, answer, confirm=True):
        """Send the announcement with ``command`` to members in parallel (waiting ``answer`` s for
        each one's ACK, or not at all with None); with confirm, the members whose port
        answered are (re)confirmed. Bounded: connectTimeout + answer, whatever the peers do."""
        if not members:
            return
        frame = self._frame(command, answer is not None)
        contacts = [(m, self.spawn(self._contact, m, frame, answer)) for m in members]
        gevent.joinall([g for _, g in contacts], timeout=self.connect_timeout / 1000.0 + (answer or 0) + 0.5)
        for member, contact in contacts:
            if not contact.ready():
                contact.kill(block=False)
            elif confirm and contact.value is not None and self._levels == MBR_BOTH:
                # with an authenticator an answering port proves nothing: signed records bring members in
                for name, m in sp.reached(self.membership, member, may_add=self.record_authenticator is None):
                    log.info("%s: static member %s is reachable", self.component_name, m.name)
                    self.fire(name, m)

    def _frame(self, command, answered):
        options = _ANNOUNCE | (_ANSWERED if answered else 0)
        message = sp.encode(self.local_record(command))
        return ChannelData.create(options, self.local_member, message).encode_frame()

    def _contact(self, member, frame, answer):
        """Write frame to member's receiver. None when its port did not accept the connection within
        connectTimeout; otherwise whether it answered (ACK within ``answer`` s; False without one)."""
        try:
            sock = gsocket.create_connection((member.hostname, member.port), timeout=self.connect_timeout / 1000.0)
        except OSError:
            return None
        try:
            sock.sendall(frame)
            if answer is None:
                return False
            sock.settimeout(answer)
            return _read_answer(sock)
        except OSError as exc:       # the port answered: alive, whatever happened next
            log.debug("%s: announcement to %s: %s", self.component_name, member.name, exc)
            return False
        finally:
            sock.close()

    # -- announcements from the listed members (the coordinator hands them over) ------------------
    def membership_message(self, msg):
        data = msg.message
        if not sp.is_announcement(data):
            return False
        if self._levels != MBR_BOTH:
            return True   # not (or no longer) running: our own start or stop tells the sender
        try:
            member = sp.decode(data)
        except ProtocolError as exc:
            self._peer_log.warning(msg.address.hostname, "%s: dropping a malformed static membership announcement "
                                   "from %s: %s", self.component_name, msg.address.name, exc)
            return True
        if not self.accept_record(member):
            return True
        listed = sp.listed(self.static_members, member)
        if listed is None:
            self._peer_log.warning(member.hostname, "%s: ignoring a static membership announcement from %s, "
                                   "which is not a listed <Member> (host, port and uniqueId must match)",
                                   self.component_name, member)
            return True
        kind = sp.kind_of(member)
        events = sp.received(self.membership, member)
        for name, m in events:
            log.info("%s: static member %s %s", self.component_name, m.name,
                     "left" if name == sp.GONE else "announced itself")
            self.fire(name, m)
        # the receiver ACKs when this returns, and the sender's start goes on then: first the
        # stack here takes the newcomer in, then the newcomer gets our own record (a PING it
        # processes before it ACKs). Each half the sender's wait at most.
        answer = self._answer_timeout()
        wait = answer / 2 if answer else self.connect_timeout / 1000.0
        if events:
            self.deliver_pending(wait)
        if kind == sp.START:
            self._contact(listed, self._frame(b"", True), wait)
        return True
