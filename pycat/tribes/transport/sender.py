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

Sends without USE_ACK to one member in one turn of the event loop share one write: the first
sender (the leader) yields once, the senders that run meanwhile add their frames to its batch and
wait, then the leader writes them all with one send() and every sender returns once its frame is
written (or with the error: frames written whole before a connection error are not sent again,
the others are retried as any send). A sender returns only after its frame was written, as
before; a turn with one sender (nothing else ready to run) writes at once. Under load this turns
a write, and a wake-up of the receiving node, per message into one per turn.

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

    __slots__ = ("sock", "created", "last_used", "count", "decoder", "timeout")

    def __init__(self, sock):
        self.sock = sock
        self.created = self.last_used = time.monotonic()
        self.count = 0
        self.decoder = None
        self.timeout = None           # the socket's timeout as last set by _write

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
    __slots__ = ("timeout", "timeout_ms", "pool_size", "max_wait", "retries", "ka_count", "ka_time", "keep")


class _Pool:
    """The connections to one member: ``queue`` the idle ones (a stack: the most recently used
    last), ``count`` the open ones and the slots handed to a waiter, ``waiters`` the senders
    waiting for one, oldest first (AsyncResults). One per member, found with one lookup per
    send (a Member hashes in Python). ``closed``: the member was disconnected or the transport
    stopped; what is given back to it is closed."""

    __slots__ = ("queue", "count", "waiters", "closed", "batch")

    def __init__(self):
        self.queue = []
        self.count = 0
        self.waiters = collections.deque()
        self.closed = False
        self.batch = None             # the _Batch of no-ack frames being gathered for one write


def _others_ready():
    """Whether another greenlet may run before one that yields now: watchers the loop has still
    to invoke in this turn (I/O that woke greenlets), or callbacks queued (greenlets to resume).
    These are gevent's loop internals (libev's); with another loop, assume there are."""
    loop = gevent.get_hub().loop
    try:
        return loop.pendingcnt > 0 or len(loop._callbacks) > 0
    except (AttributeError, TypeError):
        return True


class _Batch:
    """No-ack frames to one member written together (module doc): ``written`` of ``frames`` were
    written whole; ``error`` is why the others were not; ``done``, made by the first sender that
    joins (a sender alone needs none), is set once that is known."""

    __slots__ = ("frames", "written", "error", "done")

    def __init__(self, frame):
        self.frames = [frame]
        self.written = 0
        self.error = None
        self.done = None


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
        self._idle = {}     # member -> _Pool (its idle connections are ``.queue``)
        self._cfg = None
        self._udp = UdpSender(self)

    @property
    def _counts(self):
        """member -> open connections (and slots handed to a waiter): for tests and inspection."""
        return {member: pool.count for member, pool in self._idle.items()}

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
        cfg.keep = cfg.ka_count < 0 and cfg.ka_time < 0          # connections never retire
        return cfg

    def _stop(self):
        self._udp.close()
        pools, self._idle = self._idle, {}
        for pool in pools.values():
            self._close_pool(pool)

    @staticmethod
    def _close_pool(pool):
        pool.closed = True
        idle, pool.queue = pool.queue, []
        for conn in idle:
            conn.close()

    # -- pool -----------------------------------------------------------------------------------
    def _pool(self, member):
        pool = self._idle.get(member)
        if pool is None:
            pool = self._idle[member] = _Pool()
        return pool

    def _checkout(self, member, pool, deadline, now):
        idle = pool.queue
        while idle:
            conn = idle.pop()
            if not self._usable(conn, now):
                self._discard(pool, conn)
                continue
            return conn
        if pool.count < self._cfg.pool_size:
            pool.count += 1
            return self._connect_in_slot(member, pool, deadline)
        wait = min(self._cfg.max_wait, max(0.0, deadline - time.monotonic()))
        turn = gevent.event.AsyncResult()
        line = pool.waiters
        line.append(turn)
        try:
            turn.wait(timeout=wait)
        except BaseException:  # killed (or a caller's timeout) while in line
            if turn.ready():  # what we were handed must not die with us
                self._pass_on(pool, turn.value)
            elif turn in line:
                line.remove(turn)
            raise
        if not turn.ready():
            if turn in line:
                line.remove(turn)
            raise SendTimeout("no free connection to %s within %d ms" % (member.name, self.max_wait))
        got = turn.value
        if got is not _SLOT:
            if self._usable(got, time.monotonic()):
                return got
            got.close()  # keep its slot and open a fresh connection in it
        return self._connect_in_slot(member, pool, deadline)

    def _pass_on(self, pool, got):
        """Give back a connection or slot handed to a sender that can no longer use it."""
        if got is _SLOT:
            self._free_slot(pool)
        else:
            self._checkin(pool, got)

    def _usable(self, conn, now):
        """False when a pooled connection must not be reused: retired by keep-alive, or closed by
        the peer while it sat idle for a while (idle timeout, restart)."""
        return (self._cfg.keep or not self._expired(conn)) and not (
            now - conn.last_used > IDLE_CHECK and conn.peer_closed())

    def _connect_in_slot(self, member, pool, deadline):
        """Open a connection in a pool slot already counted for the caller; the slot is given
        back (to the next waiter, if any) if the connect fails."""
        try:
            return self._connect(member, deadline)
        except BaseException:
            self._free_slot(pool)
            raise

    def _connect(self, member, deadline):
        remaining = max(0.001, deadline - time.monotonic())
        sock = socket.create_connection(member_address(member), timeout=remaining)
        set_tcp_options(sock, self.tcp_no_delay, self.so_keep_alive)
        if self.tx_buf_size > 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, max(self.tx_buf_size, 262144))
        conn = _Connection(sock)
        conn.timeout = remaining
        return conn

    def _expired(self, conn):
        cfg = self._cfg
        if 0 <= cfg.ka_count <= conn.count:
            return True
        return 0 <= cfg.ka_time <= (time.monotonic() - conn.created) * 1000

    def _checkin(self, pool, conn):
        conn.last_used = time.monotonic()
        if pool.closed or not self._cfg.keep and self._expired(conn):
            self._discard(pool, conn)
        elif not (pool.waiters and self._hand_over(pool, conn)):
            pool.queue.append(conn)

    @staticmethod
    def _hand_over(pool, what):
        """Give a connection (or _SLOT) to the sender waiting longest; False when none waits."""
        line = pool.waiters
        while line:
            turn = line.popleft()
            if not turn.ready():
                turn.set(what)
                return True
        return False

    def _discard(self, pool, conn):
        conn.close()
        if pool.count > 0 and not pool.closed:
            self._free_slot(pool)

    def _free_slot(self, pool):
        """A connection slot is free: it passes to the next waiter (still counted), or is uncounted."""
        if not self._hand_over(pool, _SLOT):
            pool.count = max(0, pool.count - 1)

    def disconnect(self, member):
        """Close the idle connections to a member (it left the group)."""
        pool = self._idle.pop(member, None)
        if pool is not None:
            self._close_pool(pool)

    def heartbeat(self):
        if self._cfg is None:
            self._configure()
        for pool in list(self._idle.values()):
            keep = []
            for conn in pool.queue:
                if self._expired(conn):
                    self._discard(pool, conn)
                else:
                    keep.append(conn)
            pool.queue[:] = keep

    # -- sending --------------------------------------------------------------------------------
    def send_message(self, msg, members):
        """Send msg to every member; raise ChannelError naming each member that failed."""
        if self._cfg is None:
            self._configure()
        options = msg.options
        frame = msg.encode_frame()
        send = self._udp.send if options & ch.UDP else self._send_one if options & ch.USE_ACK else self._send_coalesced
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
        now = time.monotonic()
        deadline = now + cfg.timeout
        pool = self._idle.get(member) or self._pool(member)
        attempts = 0
        while True:
            conn = None
            try:
                conn = self._checkout(member, pool, deadline, now)
                self._write(conn, frame, options, deadline)
                self._checkin(pool, conn)
                return
            except (RemoteProcessError, SendTimeout) as exc:
                if conn is not None:
                    # a FAIL_ACK leaves the connection in sync; a timeout does not
                    if isinstance(exc, RemoteProcessError):
                        self._checkin(pool, conn)
                    else:
                        self._discard(pool, conn)
                faulty[member] = exc
                return
            except (OSError, ProtocolError) as exc:
                if conn is not None:
                    self._discard(pool, conn)
                attempts += 1
                now = time.monotonic()
                if attempts > cfg.retries or now >= deadline:
                    faulty[member] = exc
                    return
                log.debug("send to %s failed (%s); retry %d", member.name, exc, attempts)
                if pool.closed:          # disconnected meanwhile: a fresh pool for the retry
                    pool = self._pool(member)
            except Exception as exc:  # e.g. an unresolvable member address: that member is faulty
                if conn is not None:
                    self._discard(pool, conn)
                faulty[member] = exc
                return
            except BaseException:  # killed mid-send (stop, gevent.Timeout): the stream is unusable
                if conn is not None:
                    self._discard(pool, conn)
                raise

    def _send_coalesced(self, member, frame, options, faulty):
        """A no-ack frame (module doc): written with the others sent to ``member`` in this turn of
        the event loop, in one write; returns once it was written (or failed)."""
        pool = self._idle.get(member) or self._pool(member)
        batch = pool.batch
        if batch is not None:            # a leader is gathering (it clears pool.batch when it resumes)
            index = len(batch.frames)
            batch.frames.append(frame)
            done = batch.done
            if done is None:
                done = batch.done = gevent.event.Event()
            done.wait()
            if index >= batch.written:
                faulty[member] = batch.error or ChannelError("not written")
            return
        # this sender leads: the greenlets that run before it resumes add their frames, then it
        # writes them all (pool.batch is cleared first, so a frame comes too late for no write).
        # When no other greenlet is ready to run, nobody could add one: it writes at once.
        batch = _Batch(frame)
        try:
            if _others_ready():
                pool.batch = batch
                try:
                    gevent.sleep(0)
                finally:
                    if pool.batch is batch:
                        pool.batch = None
            self._send_batch(member, pool, batch)
        except BaseException as exc:      # killed before or while writing: the others must not wait
            if batch.error is None:
                batch.error = exc if isinstance(exc, Exception) else ChannelError("the writing sender was stopped")
            raise
        finally:
            if batch.done is not None:
                batch.done.set()
        if batch.written == 0:
            faulty[member] = batch.error

    def _send_batch(self, member, pool, batch):
        """_send_one for the frames of a batch: those not written whole are retried after a
        connection error; ``batch.error`` says why any are left."""
        cfg = self._cfg
        now = time.monotonic()
        deadline = now + cfg.timeout
        attempts = 0
        while True:
            conn = None
            try:
                conn = self._checkout(member, pool, deadline, now)
                self._write_frames(conn, batch, deadline)
                self._checkin(pool, conn)
                return
            except SendTimeout as exc:
                if conn is not None:
                    self._discard(pool, conn)
                batch.error = exc
                return
            except (OSError, ProtocolError) as exc:
                if conn is not None:
                    self._discard(pool, conn)
                attempts += 1
                now = time.monotonic()
                if attempts > cfg.retries or now >= deadline:
                    batch.error = exc
                    return
                log.debug("send to %s failed (%s); retry %d", member.name, exc, attempts)
                if pool.closed:
                    pool = self._pool(member)
            except Exception as exc:
                if conn is not None:
                    self._discard(pool, conn)
                batch.error = exc
                return
            except BaseException:
                if conn is not None:
                    self._discard(pool, conn)
                raise

    def _write_frames(self, conn, batch, deadline):
        """Write the frames of ``batch`` not written yet, in one write when the socket takes them;
        counts in ``batch.written`` the frames written whole, also when the write fails."""
        frames = batch.frames[batch.written:] if batch.written else batch.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        sock = conn.sock
        remaining = max(0.001, deadline - time.monotonic())
        if conn.timeout is None or not -0.002 < conn.timeout - remaining < 0.002:
            sock.settimeout(remaining)
            conn.timeout = remaining
        conn.count += len(frames)
        sent = 0
        try:
            sent = sock.send(data)
            if sent < len(data):
                view = memoryview(data)
                while sent < len(data):
                    sent += sock.send(view[sent:])
        except socket.timeout:
            raise SendTimeout("write not finished within %d ms" % self._cfg.timeout_ms) from None
        finally:
            if sent >= len(data):
                batch.written += len(frames)
            else:
                for frame in frames:
                    sent -= len(frame)
                    if sent < 0:
                        break
                    batch.written += 1

    def _write(self, conn, frame, options, deadline):
        sock = conn.sock
        # the socket's timeout is the time left of the whole send; setting it costs as much as a
        # small write, so it is set only when it is more than 2 ms off (a send that started at
        # once after the last one, the common case, leaves it as it is)
        remaining = max(0.001, deadline - time.monotonic())
        if conn.timeout is None or not -0.002 < conn.timeout - remaining < 0.002:
            sock.settimeout(remaining)
            conn.timeout = remaining
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
        (self.transport or self._ensure()).send_message(msg, members)

    def heartbeat(self):
        if self.transport is not None:
            self.transport.heartbeat()

    def disconnect(self, member):
        if self.transport is not None:
            self.transport.disconnect(member)
