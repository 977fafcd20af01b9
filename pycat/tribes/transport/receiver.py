"""NioReceiver: receives framed ChannelData over TCP (and UDP with udpPort) (Tomcat's NioReceiver).

One accept loop (gevent StreamServer) and one greenlet per connection. Each connection has its
own FrameDecoder, so memory per connection is bounded by the maximum frame size. Frames on one
connection are processed in order; ``maxThreads`` bounds how many messages are processed at
once across all connections (Tomcat's worker pool). ACKs follow Tomcat exactly:

* no USE_ACK: nothing is written back;
* USE_ACK without SYNCHRONIZED_ACK: ACK written as soon as the frame is read, before the listeners;
* USE_ACK with SYNCHRONIZED_ACK: ACK after the listeners ran, FAIL_ACK if one raised.

Bad input never crashes the node: a broken frame (wrong marker, absurd length, undecodable
ChannelData) is logged and the connection closed. Memory and time a peer can hold are bounded:

* at most ``maxConnections`` connections are served, each with one read buffer of ``rxBufSize``;
* a frame larger than one read buffer is charged, at the size its header announces, against
  ``maxTotalBufferSize``, one budget shared by all connections, in the read that brings its
  header; a frame that would exceed it closes its connection (logged). So a connection holds
  its read buffer, at most one more buffer's worth for a small partial frame (small frames are
  never refused, so a peer hogging the budget cannot starve ordinary replication traffic), and
  its share of the budget: ``maxConnections`` x 2 x ``rxBufSize`` + ``maxTotalBufferSize`` in
  all (about 192 MiB with the defaults, whatever the peers send);
* a frame must arrive whole within ``frameTimeout`` ms of its first byte; arriving bytes do not
  extend that (a peer trickling one byte a second is closed), and a peer silent for ``timeout``
  ms in the middle of a frame is closed sooner;
* a connection idle (between frames) for ``idleTimeout`` ms is closed. Tomcat never closes them;
  pycat's sender checks a pooled connection before reusing it, but a Java sender notices the
  close only when it next writes, so a Java node's next no-ack message after such a silence can
  be lost: set ``idleTimeout="-1"`` on a node that Java nodes send to with no-ack options.

Every such close is logged as a warning at most once a minute per peer host, with a count of
what was held back (a hostile peer repeats itself on every connection).

With ``udpPort`` set, a UDP socket (autoBind applies too) takes datagrams of send option UDP:
each datagram holds whole frames, processed like TCP ones; acks go back to the source address.

``address="auto"`` picks this host's address but never advertises 127.0.0.1 when a non-loopback
interface exists (the classic cluster misconfiguration); an explicit address is used as given.
"""
import errno
import ipaddress
import logging
import socket as pysocket
import struct
import time

import gevent
import gevent.lock
from gevent import socket
from gevent.server import StreamServer

from pycat.attrs import Attr
from pycat.errors import ChannelError, ProtocolError
from pycat.lifecycle import Lifecycle
from pycat.netutil import listen_tcp, set_tcp_options
from pycat.tribes import channel as ch
from pycat.tribes.io import framing
from pycat.tribes.io.channel_data import ChannelData
from pycat.tribes.limits import BufferBudget, PeerLog

log = logging.getLogger(__name__)

# ChannelData layout (io/channel_data.py): options, timestamp, uid length (16), uid, member length
_HEAD = struct.Struct(">IqI")
_HEAD_MLEN = struct.Struct(">IqI16xI")        # and, after the unique id, the member record's length
_UINT = struct.Struct(">I")
_MEMBER_AT = 36
#: seconds between two warnings about the same peer host
PEER_LOG_INTERVAL = 60.0
_USE_ACK, _SYNCHRONIZED_ACK = ch.USE_ACK, ch.SYNCHRONIZED_ACK


def _is_loopback(addr):
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def auto_address():
    """This host's address for peers to reach; 127.0.0.1 only when nothing else exists."""
    candidates = []
    try:
        candidates.append(pysocket.gethostbyname(pysocket.gethostname()))
    except OSError:
        pass
    # the source address of a route to the outside world; connect() on UDP sends nothing
    for probe in ("192.0.2.1", "10.255.255.255"):
        s = pysocket.socket(pysocket.AF_INET, pysocket.SOCK_DGRAM)
        try:
            s.connect((probe, 9))
            candidates.append(s.getsockname()[0])
        except OSError:
            pass
        finally:
            s.close()
    for addr in candidates:
        if addr and not _is_loopback(addr) and addr != "0.0.0.0":
            return addr
    log.warning("receiver address=auto found no non-loopback interface; advertising 127.0.0.1")
    return "127.0.0.1"


class NioReceiver(Lifecycle):
    address = Attr(str, "auto", "address to bind and advertise; auto = this host's non-loopback address",
                   aliases=("host",))
    port = Attr(int, 4000, "first TCP port to try")
    auto_bind = Attr(int, 100, "how many ports to try from port upwards")
    secure_port = Attr(int, -1, "advertised secure port (-1 none)")
    udp_port = Attr(int, -1, "first UDP port to try for the UDP listener (-1: no UDP)")
    selector_timeout = Attr(int, 5000, "accepted for compatibility (gevent needs no selector polling)")
    max_threads = Attr(int, 15, "messages processed concurrently (greenlet pool size)")
    min_threads = Attr(int, 6, "accepted for compatibility")
    max_idle_time = Attr(int, 60000, "accepted for compatibility (Tomcat's worker thread idle time)")
    idle_timeout = Attr(int, 300000, "close a connection idle this long between frames, ms; -1 never, as "
                                     "Tomcat (a Java sender may lose its next unacked message on a closed one)")
    rx_buf_size = Attr(int, 65536, "SO_RCVBUF / read size")
    tx_buf_size = Attr(int, 25188, "SO_SNDBUF")
    udp_rx_buf_size = Attr(int, 65536, "accepted for compatibility")
    udp_tx_buf_size = Attr(int, 25188, "accepted for compatibility")
    direct = Attr(bool, True, "accepted for compatibility")
    tcp_no_delay = Attr(bool, True, "TCP_NODELAY on accepted connections")
    so_keep_alive = Attr(bool, False, "SO_KEEPALIVE")
    oob_inline = Attr(bool, True, "accepted for compatibility", xml="ooBInline")
    so_reuse_address = Attr(bool, True, "SO_REUSEADDR on the listening socket")
    so_linger_on = Attr(bool, True, "accepted for compatibility")
    so_linger_time = Attr(int, 3, "accepted for compatibility")
    so_traffic_class = Attr(int, 0x1C, "accepted for compatibility")
    timeout = Attr(int, 3000, "ms a peer may stall in the middle of a frame")
    frame_timeout = Attr(int, 60000, "ms a frame may take from its first byte to its last, however "
                                     "steadily its bytes arrive (<= 0: no limit)")
    use_buffer_pool = Attr(bool, True, "accepted for compatibility")
    min_tasks = Attr(int, 10, "accepted for compatibility")
    max_tasks = Attr(int, 100, "accepted for compatibility")
    max_message_size = Attr(int, framing.DEFAULT_MAX_SIZE, "largest frame accepted, bytes")
    max_connections = Attr(int, 1024, "open connections at most; more are refused (pycat's own)")
    max_total_buffer_size = Attr(int, 64 * 1024 * 1024, "bytes all partial frames larger than rxBufSize may "
                                 "hold together; a frame that would exceed it closes its connection (<= 0: "
                                 "no limit)")

    def __init__(self):
        super().__init__()
        self.message_listener = None  # the ChannelCoordinator
        self.bound_port = None
        self.bound_udp_port = -1
        self.advertised_host = None
        self._udp = None
        self._server = None
        self._workers = None
        self._connections = set()
        self.budget = BufferBudget(self.max_total_buffer_size)
        self._peer_log = PeerLog(log, PEER_LOG_INTERVAL)
        self.stats = {"frames": 0, "errors": 0, "connections": 0, "idle_closed": 0, "frame_timeouts": 0,
                      "over_budget": 0}

    # -- lifecycle ----------------------------------------------------------------------------
    def _start(self):
        explicit = self.address and self.address.strip().lower() != "auto"
        host = self.address.strip() if explicit else auto_address()
        self._workers = gevent.lock.BoundedSemaphore(max(1, self.max_threads))
        self.budget = BufferBudget(self.max_total_buffer_size)
        if 0 < self.max_total_buffer_size < self.max_message_size:
            log.warning("receiver maxTotalBufferSize %d is below maxMessageSize %d: larger frames are always "
                        "refused", self.max_total_buffer_size, self.max_message_size)
        last = None
        for port in range(self.port, self.port + max(1, self.auto_bind)):
            try:
                listener = listen_tcp((host, port), 128, socket.AF_INET6 if ":" in host else socket.AF_INET,
                                      self.so_reuse_address)
            except OSError as exc:
                last = exc
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise ChannelError("receiver cannot bind %s:%d: %s" % (host, port, exc)) from exc
            self.bound_port = listener.getsockname()[1]
            break
        else:
            raise ChannelError("receiver found no free port in %d..%d on %s: %s"
                               % (self.port, self.port + self.auto_bind - 1, host, last))
        self.advertised_host = host
        self._server = StreamServer(listener, self._handle, spawn=self.spawn)
        self._server.start()
        log.info("receiver listening on %s:%d", host, self.bound_port)
        if self.udp_port > -1:
            self._start_udp(host)

    def _start_udp(self, host):
        """The UDP listener for send option UDP: one datagram = one or more frames."""
        last = None
        for port in range(self.udp_port, self.udp_port + max(1, self.auto_bind)):
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, max(65536, self.udp_rx_buf_size))
                sock.bind((host, port))
            except OSError as exc:
                sock.close()
                last = exc
                continue
            self._udp = sock
            self.bound_udp_port = sock.getsockname()[1]
            self.spawn(self._udp_loop, sock)
            log.info("receiver listening for UDP on %s:%d", host, self.bound_udp_port)
            return
        raise ChannelError("receiver found no free UDP port from %d on %s: %s" % (self.udp_port, host, last))

    def _udp_loop(self, sock):
        cache = [None, None]
        while True:
            data, addr = sock.recvfrom(65536)
            try:
                frames = framing.decode_frames(data, self.max_message_size)
            except ProtocolError as exc:
                self.stats["errors"] += 1
                self._peer_log.warning(addr[0], "dropping datagram from %s: %s", addr, exc)
                continue

            def reply(ack, addr=addr):
                sock.sendto(ack, addr)
            for body in frames:
                try:
                    self._process(reply, addr, body, cache)
                except OSError as exc:
                    log.debug("cannot ack datagram from %s: %s", addr, exc)

    def _stop(self):
        if self._udp is not None:
            self._udp.close()
            self._udp = None
            self.bound_udp_port = -1
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self._connections):
            try:
                conn.close()
            except OSError:
                pass
        self._connections.clear()
        self.bound_port = None

    @property
    def host(self):
        return self.advertised_host

    # -- one connection -----------------------------------------------------------------------
    def _handle(self, conn, peer):
        self.stats["connections"] += 1
        if len(self._connections) >= self.max_connections:
            # a connection flood must not buy unbounded buffers; real peers pool a few connections
            self._peer_log.warning(peer[0], "refusing connection from %s: %d connections open (maxConnections)",
                                   peer, len(self._connections))
            conn.close()
            return
        self._connections.add(conn)
        try:
            set_tcp_options(conn, self.tcp_no_delay, self.so_keep_alive)
            self._serve(conn, peer)
        except (OSError, socket.timeout) as exc:
            log.debug("connection from %s closed: %s", peer, exc)
        except Exception:  # never let one connection take the receiver down
            self.stats["errors"] += 1
            log.exception("unexpected error on connection from %s; closing it", peer)
        finally:
            self._connections.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _serve(self, conn, peer):
        decoder = framing.FrameDecoder(self.max_message_size)
        # one reusable read buffer of rxBufSize: no allocation per read, bounded memory per connection
        buf = bytearray(max(4096, self.rx_buf_size))
        view = memoryview(buf)
        cache = [None, None]  # the sender's member record and Member, reused while it repeats
        idle = self.idle_timeout / 1000.0 if self.idle_timeout > 0 else None
        stall = self.timeout / 1000.0 if self.timeout > 0 else None
        frame_time = self.frame_timeout / 1000.0 if self.frame_timeout > 0 else None
        budget = self.budget
        charged = 0     # bytes this connection holds against the shared budget
        deadline = None  # monotonic time by which the frame in progress must be complete
        reply = conn.sendall
        timeout = conn.gettimeout()
        try:
            while True:
                if decoder.buffered:
                    wait = stall
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return self._frame_late(peer, decoder)
                        wait = left if wait is None else min(wait, left)
                else:
                    wait = idle
                if wait != timeout:          # between frames it stays the idle timeout: set once
                    conn.settimeout(wait)
                    timeout = wait
                try:
                    n = conn.recv_into(buf)
                except socket.timeout:
                    if not decoder.buffered:
                        self.stats["idle_closed"] += 1
                        log.debug("closing connection from %s idle for %d ms", peer, self.idle_timeout)
                    elif deadline is not None and time.monotonic() >= deadline:
                        self._frame_late(peer, decoder)
                    else:
                        self._peer_log.warning(peer[0], "peer %s stalled mid-frame for %d ms with %d bytes; closing",
                                               peer, self.timeout, decoder.buffered)
                    return
                if not n:
                    return
                continuing = decoder.buffered
                try:
                    frames = decoder.feed(view[:n])
                except ProtocolError as exc:
                    self.stats["errors"] += 1
                    self._peer_log.warning(peer[0], "dropping connection from %s: %s", peer, exc)
                    for body in getattr(exc, "frames", ()):
                        self._process(reply, peer, body, cache)
                    return
                # charge the frame now in progress before anything else happens to it; frames that
                # fit one read buffer are free (their memory is bounded per connection already)
                size = decoder.frame_size
                if not size:
                    deadline = None
                elif (frames or not continuing) and frame_time is not None:
                    deadline = time.monotonic() + frame_time  # a new frame began in this read
                need = size if size > len(buf) else 0
                refused = False
                if need != charged:
                    budget.release(charged)
                    charged = 0
                    if budget.try_charge(need):
                        charged = need
                    else:
                        refused = True
                for body in frames:
                    if not self._process(reply, peer, body, cache):
                        return
                if refused:
                    self.stats["over_budget"] += 1
                    self._peer_log.warning(
                        peer[0], "closing connection from %s: its frame of %d bytes would exceed the receiver's "
                        "buffer budget (%d of %d bytes held by partial frames; maxTotalBufferSize)",
                        peer, need, budget.used, budget.limit)
                    return
        finally:
            budget.release(charged)

    def _frame_late(self, peer, decoder):
        self.stats["frame_timeouts"] += 1
        self._peer_log.warning(peer[0], "closing connection from %s: a frame of %d bytes was not complete within "
                               "%d ms (frameTimeout; %d bytes arrived)", peer, decoder.frame_size,
                               self.frame_timeout, decoder.buffered)

    @staticmethod
    def _decode(body, cache):
        """ChannelData.decode, but the sender's Member is decoded once per connection: a peer sends
        the same (not refreshed) member record in every message."""
        size = len(body)
        known = cache[0]
        if known is not None and size >= _MEMBER_AT + 4:
            options, timestamp, uid_len, mlen = _HEAD_MLEN.unpack_from(body, 0)
            mend = _MEMBER_AT + mlen
            if uid_len == 16 and mend + 4 <= size and mlen == len(known) and body.startswith(known, _MEMBER_AT):
                (n,) = _UINT.unpack_from(body, mend)
                if mend + 4 + n == size:
                    # a frame body is bytes (FrameDecoder): its slices are the fields' own bytes
                    return ChannelData(options, timestamp, body[16:32], cache[1], body[mend + 4:])
        msg = ChannelData.decode(body)
        cache[0] = msg.address.encode(refresh_alive=False)
        cache[1] = msg.address
        return msg

    def _process(self, reply, peer, body, cache):
        """Decode and deliver one frame body (``reply`` writes an ack back); False when the
        connection must be closed."""
        if len(body) == 3:
            return True  # a stray ACK/FAIL_ACK on a receive connection; ignore
        try:
            msg = self._decode(body, cache)
        except (ProtocolError, ValueError, struct.error) as exc:
            self.stats["errors"] += 1
            self._peer_log.warning(peer[0], "dropping undecodable ChannelData (%d bytes) from %s: %s; closing",
                                   len(body), peer, exc)
            return False
        self.stats["frames"] += 1
        options = msg.options
        use_ack = options & _USE_ACK
        sync = use_ack and options & _SYNCHRONIZED_ACK
        if use_ack and not sync:
            reply(framing.ACK_FRAME)
        failed = False
        listener = self.message_listener
        with self._workers:
            try:
                if listener is not None:
                    listener.message_received(msg)
            except Exception as exc:
                failed = True
                if not isinstance(exc, ChannelError):
                    log.exception("processing message %s from %s failed", msg.unique_id.hex(), peer)
                else:
                    log.debug("processing message from %s failed: %s", peer, exc)
        if sync:
            reply(framing.FAIL_ACK_FRAME if failed else framing.ACK_FRAME)
        return True
