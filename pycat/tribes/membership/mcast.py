"""McastService: membership by UDP multicast heartbeats (Tomcat's McastService + McastServiceImpl).

Every ``frequency`` ms the sender greenlet multicasts the local member record (member.py) to
``address:port``; the receiver greenlet reads the group. A record from an unknown member makes it
a member (``member_added``); a member silent for more than ``dropTime`` ms is removed
(``member_disappeared``); a record whose command is ``BABY-ALEX`` (sent once by a stopping
service) removes its member at once. A datagram not beginning with ``TRIBES-B`` carries framed
ChannelData broadcasts (send option MULTICAST, see ``broadcast``).

Start levels are Tomcat's: MBR_RX (4) runs the receiver, MBR_TX (8) the sender; the contract
(``start_services(level)``/``stop_services(level)``, listeners, queries) is the one in ``base.py``. Starting a level
opens and joins the socket if needed, sends one heartbeat at once when starting MBR_TX, then
waits 2 x frequency for the group to answer (a gevent sleep: only the caller waits). When the
last level stops, the service sends its goodbye record, leaves the group and closes the socket.
``message_listener`` (an object with ``message_received(cd)``, or a callable) gets each ChannelData
broadcast from another member, inline in the receiver greenlet.

Bad datagrams are dropped and counted (``dropped``), logged at most every 10 s; the receiver
handles at most 64 datagrams in a row before yielding, so a flood cannot starve the sender.

Anyone who can reach the group can announce members. Two defences: the member table holds at most
``maxMembers`` members (a new one beyond that is refused and logged, once a minute per source;
known members keep being refreshed), and with an AuthInterceptor in the channel every record is
signed under the cluster secret and unsigned or badly signed ones are ignored (see
``group/interceptors/auth.py`` for the format and for what that means for Tomcat peers).
"""
import logging
import socket
import time

import gevent
from gevent import socket as gsocket

from pycat.attrs import Attr
from pycat.errors import ChannelError, LifecycleError, ProtocolError
from pycat.tribes.io.channel_data import ChannelData
from pycat.tribes.io.framing import START_DATA, decode_frames, encode_frame
from pycat.tribes.member import MEMBER_BEGIN, SHUTDOWN_PAYLOAD, Member
from pycat.tribes.membership.base import MBR_RX, MBR_TX, MemberField, MembershipService, resolve_host

log = logging.getLogger(__name__)

#: largest UDP payload over IPv4
MAX_PACKET_SIZE = 65507
_IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)  # Linux: 0 = only groups this socket joined
_BURST = 64
_DROP_LOG_INTERVAL = 10.0


def _halt(greenlet):
    """Kill a loop greenlet (unless it is the caller, whose loop then ends by itself); returns None."""
    if greenlet is not None and greenlet is not gevent.getcurrent():
        greenlet.kill()
    return None


class McastService(MembershipService):
    address = Attr(str, "228.0.0.4", "multicast group", aliases=("mcastAddr",))
    port = Attr(int, 45564, "multicast port", aliases=("mcastPort",))
    frequency = Attr(int, 500, "ms between heartbeats", aliases=("mcastFrequency",))
    drop_time = Attr(int, 3000, "ms of silence before a member is dropped", aliases=("mcastDropTime",))
    bind = Attr(str, None, "interface address to join and send on", aliases=("mcastBindAddress",))
    ttl = Attr(int, 1, "multicast TTL", aliases=("mcastTTL",))
    so_timeout = Attr(int, -1, "receive timeout in ms (<= 0: frequency)", aliases=("mcastSoTimeout",))
    domain = MemberField(MembershipService.domain.type, b"", MembershipService.domain.doc,
                         aliases=("mcastClusterDomain",))
    recovery_enabled = Attr(bool, True, "reopen the socket after repeated errors")
    recovery_counter = Attr(int, 10, "consecutive errors that trigger recovery")
    recovery_sleep_time = Attr(int, 5000, "ms between recovery attempts")
    local_loopback_disabled = Attr(bool, False, "do not loop our datagrams back to this host")
    max_members = Attr(int, 256, "members at most in the table; records of more are refused (pycat's own)")

    def __init__(self):
        super().__init__()
        self.dropped = 0
        self._sock = None
        self._receiver = self._sender = self._recovery = None
        self._errors = 0
        self._last_expiry = 0
        self._drop_logged_at = 0.0
        self._drops_unlogged = 0

    def _start_service(self):
        if self.frequency <= 0 or self.drop_time <= 0:
            raise LifecycleError("frequency and dropTime must be positive")
        super()._start_service()
        self.membership.max_members = self.max_members
        self._errors = 0
        self._open_socket()

    def _start_levels(self, level):
        if level & MBR_RX:
            self._receiver = self.spawn(self._receive_loop)
        if level & MBR_TX:
            self._send(self.local_record())
            self._sender = self.spawn(self._send_loop)
        log.info("%s: started level %d on %s:%d, waiting %d ms for members", self.component_name, level,
                 self.address, self.port, 2 * self.frequency)
        gevent.sleep(2 * self.frequency / 1000.0)

    def _stop_levels(self, level):
        if level & MBR_RX:
            self._receiver = _halt(self._receiver)
        if level & MBR_TX:
            self._sender = _halt(self._sender)

    def _stop_service(self):
        self._recovery = _halt(self._recovery)  # it must not reopen what we close
        if self._sock is not None:
            # the goodbye: peers drop us at once instead of after dropTime
            self.local_member.command = SHUTDOWN_PAYLOAD
            try:
                self._send(self.local_record())
            except OSError as exc:
                log.warning("%s: could not send the shutdown notice: %s", self.component_name, exc)
        self._close_socket()
        super()._stop_service()

    # -- socket -------------------------------------------------------------------------------
    def _open_socket(self):
        group = resolve_host(self.address)
        if len(group) != 4 or not 224 <= group[0] <= 239:
            raise LifecycleError("%s: %s is not an IPv4 multicast group" % (self.component_name, self.address))
        iface = resolve_host(self.bind) if self.bind else bytes(4)
        if len(iface) != 4:
            raise LifecycleError("%s: bind must be an IPv4 interface address" % self.component_name)
        sock = gsocket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:  # Linux would otherwise deliver every group joined by anyone on this port
                sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
            except OSError:
                pass
            try:  # binding the group address filters out other groups (Tomcat does the same)
                sock.bind((self.address, self.port))
            except OSError:
                sock.bind(("", self.port))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group + iface)
            if self.bind:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, iface)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0 if self.local_loopback_disabled else 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, self.ttl)
            sock.settimeout((self.so_timeout if self.so_timeout > 0 else self.frequency) / 1000.0)
        except OSError:
            sock.close()
            raise
        self._sock = sock

    def _close_socket(self):
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            iface = resolve_host(self.bind) if self.bind else bytes(4)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, resolve_host(self.address) + iface)
        except (OSError, ValueError):
            pass
        sock.close()

    def _send(self, data):
        self._sock.sendto(data, (self.address, self.port))

    # -- greenlets ----------------------------------------------------------------------------
    def _send_loop(self):
        me = gevent.getcurrent()
        while self._sender is me:
            gevent.sleep(self.frequency / 1000.0)
            try:
                self._send(self.local_record())
                self._errors = 0
            except (OSError, AttributeError) as exc:  # AttributeError: socket closed for recovery
                self._io_error("send", exc)
            self.check_expired()

    def _receive_loop(self):
        me = gevent.getcurrent()
        burst = 0
        while self._receiver is me:
            try:
                data, source = self._sock.recvfrom(65536)
            except socket.timeout:
                burst = 0
            except (OSError, AttributeError) as exc:
                self._io_error("receive", exc)
                gevent.sleep(min(self.frequency, 100) / 1000.0)
            else:
                self._errors = 0
                self.datagram_received(data, source)
                burst += 1
                if burst >= _BURST:
                    burst = 0
                    gevent.sleep(0)
            self.check_expired(throttle=True)

    def _io_error(self, what, exc):
        self._errors += 1
        # the first error, the one triggering recovery, then one in a hundred: a dead socket must not flood the log
        loud = self._errors in (1, self.recovery_counter) or self._errors % 100 == 0
        level = logging.WARNING if loud else logging.DEBUG
        log.log(level, "%s: multicast %s failed (%d in a row): %s", self.component_name, what, self._errors, exc)
        if self.recovery_enabled and self._errors >= self.recovery_counter and self._recovery is None:
            self._recovery = self.spawn(self._recover)

    def _recover(self):
        """Tomcat's RecoveryThread: reopen the socket until it works, every recoverySleepTime ms."""
        try:
            while True:
                log.warning("%s: recovering the multicast socket", self.component_name)
                self._receiver = _halt(self._receiver)
                self._close_socket()
                try:
                    self._open_socket()
                except OSError as exc:
                    log.warning("%s: recovery failed: %s", self.component_name, exc)
                    gevent.sleep(self.recovery_sleep_time / 1000.0)
                    continue
                self._errors = 0
                if self._levels & MBR_RX:
                    self._receiver = self.spawn(self._receive_loop)
                log.info("%s: multicast socket recovered", self.component_name)
                return
        finally:
            self._recovery = None

    # -- what arrives ---------------------------------------------------------------------------
    def datagram_received(self, data, source=None):
        """Handle one datagram from source (host, port) (the receiver calls this; tests may too)."""
        try:
            if data.startswith(MEMBER_BEGIN):
                self.member_data_received(Member.decode(data), source)
            else:
                messages = [ChannelData.decode(body) for body in decode_frames(data, MAX_PACKET_SIZE)]
                for message in messages:
                    self._message_received(message)
        except ProtocolError as exc:
            self._drop(data, exc)

    def member_data_received(self, member, source=None):
        if member == self.local_member:
            return  # our own heartbeat, looped back
        if not self.accept_record(member, source):
            return
        if member.is_shutdown:
            if self.membership.remove(member) is not None:
                self.fire("member_disappeared", member)
            return
        added = self.membership.member_alive(member)
        if added:
            self.fire("member_added", member)
        elif added is None:
            self._peer_log.warning(source[0] if source else member.hostname,
                                   "%s: member table full (%d members, maxMembers); not adding %s from %s",
                                   self.component_name, len(self.membership), member.name, source or "?")

    def _message_received(self, message):
        listener = self.message_listener
        if listener is None or message.address == self.local_member:
            return
        try:
            # a channel coordinator (message_received) or any callable
            getattr(listener, "message_received", listener)(message)
        except Exception:
            log.exception("%s: message listener failed for %r", self.component_name, message)

    def _drop(self, data, exc):
        self.dropped += 1
        self._drops_unlogged += 1
        now = time.monotonic()
        if now - self._drop_logged_at >= _DROP_LOG_INTERVAL:
            log.warning("%s: dropped %d bad datagram(s) on %s:%d; latest (%d bytes): %s", self.component_name,
                        self._drops_unlogged, self.address, self.port, len(data), exc)
            self._drop_logged_at, self._drops_unlogged = now, 0

    def check_expired(self, throttle=False):
        """Drop members silent for more than dropTime (throttled to every 100 ms from the receiver)."""
        now = self.membership.clock()
        if throttle and now - self._last_expiry < 100:
            return
        self._last_expiry = now
        self.expire(self.drop_time, now)

    # -- the membership service contract ----------------------------------------------------------
    def broadcast(self, message):
        """Multicast a ChannelData (or its encoded/framed bytes) to the group (send option MULTICAST)."""
        if not self._levels & MBR_TX or self._sock is None:
            raise ChannelError("multicast send is not started or enabled")
        if isinstance(message, ChannelData):
            data = message.encode_frame()
        else:
            data = bytes(message) if message[:len(START_DATA)] == START_DATA else encode_frame(message)
        if len(data) > MAX_PACKET_SIZE:
            raise ChannelError("packet length %d exceeds the multicast maximum of %d bytes"
                               % (len(data), MAX_PACKET_SIZE))
        try:
            self._send(data)
        except OSError as exc:
            raise ChannelError("multicast send failed: %s" % exc) from exc
