"""ReplicationTransmitter and PooledParallelSender: the sending side of the TCP transport.

``ReplicationTransmitter`` is the <Sender> shell; its only child is the <Transport>, a
``PooledParallelSender``. The transport keeps, per destination member, a pool of up to
``poolSize`` open connections; a send to several members runs in parallel (one greenlet per
member beyond the first) and the frame is encoded once and written in one call.

ACK semantics as Tomcat's NioSender: with USE_ACK the sender reads back one frame on the same
connection; ACK completes the send, FAIL_ACK is a remote processing failure. The whole send to a
member is bounded by ``timeout`` ms. A connection error is retried ``maxRetryAttempts`` times on a
fresh connection; timeouts and FAIL_ACKs are not retried (the message may have been delivered).
Send option UDP (32) sends one datagram to the member's udpPort instead (acked the same way,
never retried). Failures are collected per member and raised together as ChannelError whose ``faulty`` maps each
failed member to its reason; the other members still get the message. ``keepAliveCount`` /
``keepAliveTime`` retire connections after so many sends / so many ms.

When all ``poolSize`` connections to a member are busy, a send waits up to ``maxWait`` ms in
line: a connection given back (or the slot of one closed) goes straight to the sender that has
waited longest, never back into the pool where the greenlet that just returned it would take it
again before any waiter runs (under contention that starved waiters until maxWait and lost
async messages).
"""
import collections
import logging
import select
import time

import gevent
import gevent.event
import gevent.queue
from gevent import socket

from pycat.attrs import Attr
from pycat.errors import ChannelError, ProtocolError
from pycat.lifecycle import Lifecycle
from pycat.netutil import set_tcp_options
from pycat.tribes import channel as ch
from pycat.tribes.io import framing
from pycat.tribes.transport.errors import RemoteProcessError, SendTimeout
from pycat.tribes.transport.udp import UdpSender

log = logging.getLogger(__name__)


def member_address(member):
    return member.hostname, member.port


#: seconds of idleness after which a pooled connection is checked before reuse
IDLE_CHECK = 0.1
#: what a waiting sender is handed when a pool slot (not a connection) becomes free
_SLOT = object()


class _Connection:
    """One TCP connection to a member."""

    __slots__ = ("sock", "created", "last_used", "count", "decoder")

    def __init__(self, sock):
        self.sock = sock
        self.created = self.last_used = time.monotonic()
        self.count = 0
        self.decoder = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def peer_closed(self):
        """True when the peer closed (or wrote to) an idle pooled connection: it cannot be reused.

        A plain zero-timeout select: an idle connection with nothing owed to us is only readable
        when the peer hung up (EOF/RST) or broke protocol.
        """
        try:
            readable, _, _ = select.select([self.sock.fileno()], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)


class _Config:
    __slots__ = ("timeout", "timeout_ms", "pool_size", "max_wait", "retries", "ka_count", "ka_time")


_HOT_ATTRS = frozenset(("timeout", "pool_size", "max_wait", "max_retry_attempts", "keep_alive_count",
                        "keep_alive_time"))


class PooledParallelSender(Lifecycle):
    pool_size = Attr(int, 25, "concurrent connections per destination")
    max_wait = Attr(int, 3000, "ms to wait for a free pooled connection")
    timeout = Attr(int, 3000, "ms the whole send to one member may take (incl. the ACK)")
    max_retry_attempts = Attr(int, 1, "resends after a connection error")
    keep_alive_count = Attr(int, -1, "close a connection after this many sends (-1 never)")
    keep_alive_time = Attr(int, -1, "close a connection this many ms after it opened (-1 never)")
    rx_buf_size = Attr(int, 25188, "SO_RCVBUF")
    tx_buf_size = Attr(int, 65536, "SO_SNDBUF")
    udp_rx_buf_size = Attr(int, 25188, "accepted for compatibility")
    udp_tx_buf_size = Attr(int, 65536, "accepted for compatibility")
    direct_buffer = Attr(bool, False, "accepted for compatibility")
    tcp_no_delay = Attr(bool, True, "TCP_NODELAY")
    so_keep_alive = Attr(bool, False, "SO_KEEPALIVE")
    oob_inline = Attr(bool, True, "accepted for compatibility", xml="ooBInline")
    so_reuse_address = Attr(bool, True, "accepted for compatibility")
    so_linger_on = Attr(bool, False, "accepted for compatibility")
    so_linger_time = Attr(int, 3, "accepted for compatibility")
    so_traffic_class = Attr(int, 0x1C, "accepted for compatibility")
    throw_on_failed_ack = Attr(bool, True, "a FAIL_ACK raises (else it is logged)")

    def __init__(self):
        super().__init__()
        self._idle = {}     # member -> LifoQueue of idle _Connection
        self._counts = {}   # member -> open connections (and slots handed to a waiter)
        self._waiters = {}  # member -> deque of AsyncResult, one per waiting sender, oldest first
        self._cfg = None
        self._udp = UdpSender(self)

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        if name in _HOT_ATTRS:
            object.__setattr__(self, "_cfg", None)  # re-snapshot on the next send

    def _start(self):
        self._configure()

    def _configure(self):
        """Snapshot the attributes the hot path reads (an Attr lookup costs a descriptor call)."""
        self._cfg = cfg = _Config()
        cfg.timeout = self.timeout / 1000.0 if self.timeout > 0 else 3600.0
        cfg.timeout_ms = self.timeout
        cfg.pool_size = max(1, self.pool_size)
        cfg.max_wait = self.max_wait / 1000.0
        cfg.retries = self.max_retry_attempts
        cfg.ka_count, cfg.ka_time = self.keep_alive_count, self.keep_alive_time
        return cfg

    def _stop(self):
        self._udp.close()
        idle, self._idle = self._idle, {}
        for queue in idle.values():
            while not queue.empty():
                queue.get_nowait().close()
        self._counts.clear()

    # -- pool -----------------------------------------------------------------------------------
    def _checkout(self, member, deadline):
        queue = self._idle.get(member)
        if queue is None:
            queue = self._idle[member] = gevent.queue.LifoQueue()
        while True:
            try:
                conn = queue.get_nowait()
            except gevent.queue.Empty:
                break
            if not self._usable(conn):
                self._discard(member, conn)
                continue
            return conn
        if self._counts.get(member, 0) < self._cfg.pool_size:
            self._counts[member] = self._counts.get(member, 0) + 1
            return self._connect_in_slot(member, deadline)
        wait = min(self._cfg.max_wait, max(0.0, deadline - time.monotonic()))
        turn = gevent.event.AsyncResult()
        line = self._waiters.setdefault(member, collections.deque())
        line.append(turn)
        try:
            turn.wait(timeout=wait)
        except BaseException:  # killed (or a caller's timeout) while in line
            if turn.ready():  # what we were handed must not die with us
                self._pass_on(member, turn.value)
            elif turn in line:
                line.remove(turn)
            raise
        if not turn.ready():
            if turn in line:
                line.remove(turn)
            raise SendTimeout("no free connection to %s within %d ms" % (member.name, self.max_wait))
        got = turn.value
        if got is not _SLOT:
            if self._usable(got):
                return got
            got.close()  # keep its slot and open a fresh connection in it
        return self._connect_in_slot(member, deadline)

    def _pass_on(self, member, got):
        """Give back a connection or slot handed to a sender that can no longer use it."""
        if got is _SLOT:
            self._free_slot(member)
        else:
            self._checkin(member, got)

    def _usable(self, conn):
        """False when a pooled connection must not be reused: retired by keep-alive, or closed by
        the peer while it sat idle for a while (idle timeout, restart)."""
        return not self._expired(conn) and not (time.monotonic() - conn.last_used > IDLE_CHECK and conn.peer_closed())

    def _connect_in_slot(self, member, deadline):
        """Open a connection in a pool slot already counted for the caller; the slot is given
        back (to the next waiter, if any) if the connect fails."""
        try:
            return self._connect(member, deadline)
        except BaseException:
            self._free_slot(member)
            raise

    def _connect(self, member, deadline):
        remaining = max(0.001, deadline - time.monotonic())
        sock = socket.create_connection(member_address(member), timeout=remaining)
        set_tcp_options(sock, self.tcp_no_delay, self.so_keep_alive)
        if self.tx_buf_size > 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, max(self.tx_buf_size, 262144))
        return _Connection(sock)

    def _expired(self, conn):
        cfg = self._cfg
        if 0 <= cfg.ka_count <= conn.count:
            return True
        return 0 <= cfg.ka_time <= (time.monotonic() - conn.created) * 1000

    def _checkin(self, member, conn):
        conn.last_used = time.monotonic()
        if self._expired(conn) or member not in self._idle:
            self._discard(member, conn)
        elif not self._hand_over(member, conn):
            self._idle[member].put(conn)

    def _hand_over(self, member, what):
        """Give a connection (or _SLOT) to the sender waiting longest; False when none waits."""
        line = self._waiters.get(member)
        while line:
            turn = line.popleft()
            if not turn.ready():
                turn.set(what)
                return True
        return False

    def _discard(self, member, conn):
        conn.close()
        if self._counts.get(member, 0) > 0:
            self._free_slot(member)

    def _free_slot(self, member):
        """A connection slot is free: it passes to the next waiter (still counted), or is uncounted."""
        if not self._hand_over(member, _SLOT):
            self._counts[member] = max(0, self._counts.get(member, 0) - 1)

    def disconnect(self, member):
        """Close the idle connections to a member (it left the group)."""
        queue = self._idle.pop(member, None)
        if queue is not None:
            while not queue.empty():
                queue.get_nowait().close()
        self._counts.pop(member, None)

    def heartbeat(self):
        if self._cfg is None:
            self._configure()
        for member, queue in list(self._idle.items()):
            keep = []
            while not queue.empty():
                conn = queue.get_nowait()
                if self._expired(conn):
                    self._discard(member, conn)
                else:
                    keep.append(conn)
            for conn in reversed(keep):
                queue.put(conn)

    # -- sending --------------------------------------------------------------------------------
    def send_message(self, msg, members):
        """Send msg to every member; raise ChannelError naming each member that failed."""
        if self._cfg is None:
            self._configure()
        options = msg.options
        frame = msg.encode_frame()
        send = self._udp.send if options & ch.UDP else self._send_one
        faulty = {}
        if len(members) == 1:
            send(members[0], frame, options, faulty)
        else:
            jobs = [self.spawn(send, m, frame, options, faulty) for m in members[1:]]
            send(members[0], frame, options, faulty)
            gevent.joinall(jobs)
        if faulty:
            remote_only = all(isinstance(e, RemoteProcessError) for e in faulty.values())
            if remote_only and not self.throw_on_failed_ack:
                log.warning("FAIL_ACK from %s", ", ".join(m.name for m in faulty))
                return
            raise ChannelError("send failed to %d of %d members: %s" % (
                len(faulty), len(members), "; ".join("%s: %s" % (m.name, e) for m, e in faulty.items())),
                faulty)

    def _send_one(self, member, frame, options, faulty):
        cfg = self._cfg
        deadline = time.monotonic() + cfg.timeout
        attempts = 0
        while True:
            conn = None
            try:
                conn = self._checkout(member, deadline)
                self._write(conn, frame, options, deadline)
                self._checkin(member, conn)
                return
            except (RemoteProcessError, SendTimeout) as exc:
                if conn is not None:
                    # a FAIL_ACK leaves the connection in sync; a timeout does not
                    if isinstance(exc, RemoteProcessError):
                        self._checkin(member, conn)
                    else:
                        self._discard(member, conn)
                faulty[member] = exc
                return
            except (OSError, ProtocolError) as exc:
                if conn is not None:
                    self._discard(member, conn)
                attempts += 1
                if attempts > cfg.retries or time.monotonic() >= deadline:
                    faulty[member] = exc
                    return
                log.debug("send to %s failed (%s); retry %d", member.name, exc, attempts)
            except Exception as exc:  # e.g. an unresolvable member address: that member is faulty
                if conn is not None:
                    self._discard(member, conn)
                faulty[member] = exc
                return
            except BaseException:  # killed mid-send (stop, gevent.Timeout): the stream is unusable
                if conn is not None:
                    self._discard(member, conn)
                raise

    def _write(self, conn, frame, options, deadline):
        sock = conn.sock
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        conn.count += 1
        try:
            # one send() call for the common case; gevent's sendall costs more per call
            sent = sock.send(frame)
            if sent < len(frame):
                sock.sendall(memoryview(frame)[sent:])
            if not options & ch.USE_ACK:
                return
            if conn.decoder is None:
                conn.decoder = framing.FrameDecoder(64)
            while True:
                data = sock.recv(64)
                if not data:
                    raise ConnectionResetError("connection closed while waiting for the ACK")
                frames = conn.decoder.feed(data)
                if frames:
                    break
        except socket.timeout:
            raise SendTimeout("no ACK within %d ms" % self._cfg.timeout_ms) from None
        body = frames[0]
        if body == framing.FAIL_ACK_DATA:
            raise RemoteProcessError("remote processing failed (FAIL_ACK)")
        if body != framing.ACK_DATA:
            raise ProtocolError("expected an ACK, got %r" % body[:16])


class ReplicationTransmitter(Lifecycle):
    """The <Sender> shell: forwards to its <Transport> (a PooledParallelSender by default)."""

    def __init__(self):
        super().__init__()
        self.transport = None

    def set_transport(self, transport):
        self.transport = transport

    def _ensure(self):
        if self.transport is None:
            self.transport = PooledParallelSender()
        return self.transport

    def _start(self):
        self._ensure().start()

    def _stop(self):
        if self.transport is not None:
            self.transport.stop()

    def send_message(self, msg, members):
        self._ensure().send_message(msg, members)

    def heartbeat(self):
        if self.transport is not None:
            self.transport.heartbeat()

    def disconnect(self, member):
        if self.transport is not None:
            self.transport.disconnect(member)
