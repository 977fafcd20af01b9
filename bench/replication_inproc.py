#!/usr/bin/env python3
"""bench/replication_inproc: session replication's CPU work in one process, deterministic.

    python bench/replication_inproc.py                    # every part, timings (medians)
    python bench/replication_inproc.py --parts send,apply --n 10000 --repeat 5
    python bench/replication_inproc.py --callgrind        # instruction counts per item (valgrind)

Two SimpleTcpClusters, A and B, are built in this process with their real stacks: GroupChannel,
TcpFailureDetector and MessageDispatchInterceptor (the cluster's defaults), ChannelCoordinator,
PooledParallelSender, NioReceiver, a DeltaManager for /app on each. What is not real is the
network: A's pooled connection to B is a sink that keeps the frames A writes (its ``send``
returns at once), and B's receiver serves a connection whose reads return those frames
(``NioReceiver._serve``, the code a node runs for every connection). So every part runs the
whole path a node runs, minus the syscalls and the gevent wake-ups, and repeats exactly.

Parts (each measured on its own, after one untimed run):

    send     A answers a GET-ALL: ``_send_all_sessions`` for --n sessions of ~1 KB (the payload
             bench/replication.py fills nodes with), down to the frames written (per session)
    apply    B takes those frames as a joiner does: read in 64 KB reads (a socket read's size),
             frames decoded, ChannelData, codec, envelopes, ``load_records`` (per session)
    delta    one replicated request on A: find the session, access, ``s["count"] += 1``,
             end_access, ``request_completed`` down to the frame written (per request); then
             delta-req, the same requests without request_completed, and delta-rc, the
             difference: request_completed's share (bookkeeping, encoding, the channel)
    dapply   B reads A's frames of such requests (one read per frame, as a node woken per
             message) and applies them (per delta; new deltas for every run)
    chsend   the channel alone: ``GroupChannel.send`` of a small cluster message (options 0,
             what async session messages use) down to the frame written (per message)
    chrecv   B's receiver, coordinator and interceptors up to the channel listeners for those
             frames, one read per frame (per message)
    loop     real loopback TCP in this process: A sends small messages with the real sender
             to B's real receiver (its greenlet reads them); CPU time per message, both sides,
             syscalls included (not with --callgrind: the scheduling makes it vary)

Timings: CPU time (time.process_time) per item, the median of --repeat runs, GC on as in a node.
``--callgrind`` runs this script under ``valgrind --tool=callgrind`` for each part twice, with 1
and with 3 repetitions of the part after the same setup, and reports (Ir(3) - Ir(1)) / 2 / items:
instructions per item, which do not depend on the machine's load (PYTHONHASHSEED is fixed).
"""
import argparse
import gc
import os
import re
import socket
import statistics
import subprocess
import sys
import time

HOME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]                  # bench/http.py must not shadow the stdlib's http
sys.path.insert(0, HOME)

PARTS = ("send", "apply", "delta", "dapply", "chsend", "chrecv", "loop")


def payload(i):
    """About 1 KB of typical attributes, distinct objects per session (bench/replication.py's)."""
    return {
        "user": "user%07d" % i,
        "roles": ["user", "reader", "team-%d" % (i % 50)],
        "prefs": {"lang": "en", "tz": "UTC", "page_size": 20, "theme": "dark", "visits": i},
        "cart": [{"sku": "SKU-%06d" % (i + k), "qty": k + 1} for k in range(4)],
        "blob": ("%08d" % i) * 96,  # 768 chars
    }


class App:
    """What a manager needs of its Context."""
    name = "/app"
    parent = None
    loader = None
    distributable = True


class Membership:
    """The membership service's part the coordinator uses; members are set by hand (pair())."""

    def __init__(self):
        self.local_member = None
        self.membership_listener = self.message_listener = None

    def set_local_member_properties(self, host, port, secure_port=-1, udp_port=-1):
        from pycat.tribes.member import Member
        if self.local_member is None:
            self.local_member = Member.local(host, port, secure_port, udp_port)

    def get_local_member(self, inc_alive=False):
        return self.local_member

    def start_services(self, levels):
        pass

    def stop_services(self, levels):
        pass

    def get_members(self):
        return []

    def has_members(self):
        return False

    def broadcast(self, frame):
        pass


class Sink:
    """A's connection to B: keeps what is written."""

    def __init__(self, fd):
        self.frames = []
        self._fd = fd

    def settimeout(self, timeout):
        pass

    def send(self, data):
        self.frames.append(data)
        return len(data)

    sendall = send

    def recv(self, size):
        from pycat.tribes.io.framing import ACK_FRAME
        return ACK_FRAME                          # the transfer's announcement asks for one

    def fileno(self):
        return self._fd

    def close(self):
        pass


class Source:
    """B's connection from A: each read returns the next chunk; then EOF."""

    def __init__(self, chunks):
        self.chunks = iter(chunks)
        self.acks = 0

    def settimeout(self, timeout):
        pass

    def gettimeout(self):
        return None

    def recv_into(self, buf):
        chunk = next(self.chunks, None)
        if chunk is None:
            return 0
        n = len(chunk)
        buf[:n] = chunk
        return n

    def sendall(self, data):
        self.acks += 1


def node(name):
    from pycat.ha.cluster import SimpleTcpCluster
    from pycat.ha.session.delta_manager import DeltaManager
    from pycat.tribes.group.group_channel import GroupChannel
    from pycat.tribes.transport.receiver import NioReceiver
    channel = GroupChannel()
    channel.heartbeat_enabled = False
    channel.set_membership(Membership())
    receiver = NioReceiver()
    receiver.address, receiver.port = "127.0.0.1", 0
    channel.set_receiver(receiver)
    cluster = SimpleTcpCluster()
    cluster.set_channel(channel)
    cluster.channel_send_options = 8              # async, as bench/replication.py's mode 8
    cluster.set_manager_template(DeltaManager())
    cluster.start()
    app = App()
    manager = cluster.create_manager(app)
    manager.context, manager.name, manager.distributable = app, "/app", True
    manager.start()                               # no members yet: no state transfer
    return cluster, manager, receiver


class Pair:
    """Clusters A and B (module doc); A's frames to B collect in ``sink.frames``."""

    def __init__(self):
        import gevent.queue
        from pycat.tribes.transport import sender
        self.a, self.ma, _ = node("A")
        self.b, self.mb, self.rb = node("B")
        self.la = self.a.get_local_member()
        self.lb = self.b.get_local_member()
        for cluster, peer in ((self.a, self.lb), (self.b, self.la)):
            detector = cluster.channel.next
            while not hasattr(detector, "_members"):
                detector = detector.next
            detector._members[peer] = peer            # members without a TCP probe
        self._pair = socket.socketpair()              # a descriptor select() finds idle
        self.sink = Sink(self._pair[0].fileno())
        transport = self.a.channel.sender._ensure()
        transport._configure()
        if hasattr(sender, "_Pool"):                  # a pool per member (this tree)
            pool = transport._idle[self.lb] = sender._Pool()
            pool.queue.append(sender._Connection(self.sink))
            pool.count = 1
        else:                                         # dicts of queues and counts (older trees)
            queue = transport._idle[self.lb] = gevent.queue.LifoQueue()
            queue.put(sender._Connection(self.sink))
            transport._counts[self.lb] = 1

    def take(self):
        frames, self.sink.frames = self.sink.frames, []
        return frames

    def serve_b(self, chunks):
        """B's receiver reads ``chunks`` as one connection (the real _serve); returns acks written."""
        source = Source(chunks)
        self.rb._serve(source, ("127.0.0.1", 4000))
        return source.acks

    def close(self):
        for manager, cluster in ((self.ma, self.a), (self.mb, self.b)):
            manager.stop()
            cluster.stop()
        for s in self._pair:
            s.close()


def chunked(frames, size=65536):
    data = b"".join(frames)
    return [data[i:i + size] for i in range(0, len(data), size)]


# -- the parts: setup(pair, n) -> state; run(pair, state) -> items done ----------------------------
def fill(manager, n):
    for i in range(n):
        session = manager.create_session()
        for name, value in payload(i).items():
            session.set_attribute(name, value, False, False)


def setup_send(pair, n):
    fill(pair.ma, n)
    return n


def run_send(pair, n):
    pair.sink.frames.clear()
    pair.ma._send_all_sessions(pair.lb, "token")
    return n


def setup_apply(pair, n):
    fill(pair.ma, n)
    run_send(pair, n)
    return chunked(pair.take()), n


def run_apply(pair, state):
    from pycat.ha.session.state_transfer import _Transfer
    chunks, n = state
    manager = pair.mb
    dict.clear(manager._sessions)
    transfer = manager._transfer = _Transfer(pair.la)
    transfer.token = "token"
    pair.serve_b(chunks)
    assert transfer.done.is_set() and transfer.received == n, (transfer.received, n)
    manager._transfer = None
    return n


def request(manager, sid):
    session = manager.find_session(sid)
    session.access()
    session["count"] = session.get("count", 0) + 1
    session.end_access()
    return session


def setup_delta(pair, n):
    ids = []
    for _ in range(min(n, 1000)):
        session = pair.ma.create_session()
        session.access()
        session["count"] = 0
        session.end_access()
        pair.ma.request_completed(session)
        ids.append(session.id)
    pair.serve_b(pair.take())                    # B has the sessions
    return [ids[i % len(ids)] for i in range(n)]


def run_delta(pair, ids):
    pair.sink.frames.clear()
    manager = pair.ma
    completed = manager.request_completed
    for sid in ids:
        completed(request(manager, sid))
    return len(ids)


def run_delta_req(pair, ids):
    """The requests of run_delta without request_completed (their trackers dropped after, as
    request_completed does): run_delta less this is request_completed's share (delta-rc)."""
    pair.sink.frames.clear()
    manager = pair.ma
    for sid in ids:
        session = request(manager, sid)
        session.tracker = session.observer = session.fields = None
    return len(ids)


def setup_dapply(pair, n):
    return setup_delta(pair, n), None


def prepare_dapply(pair, state):
    """New deltas for each run (a delta B has applied already changes nothing: cheaper)."""
    ids, _ = state
    run_delta(pair, ids)
    return ids, pair.take()


def run_dapply(pair, state):
    _ids, frames = state
    pair.serve_b(frames)
    return len(frames)


def small_message():
    """A small channel message that is not a cluster envelope (the cluster does not take it): the
    channel's own cost, without a cluster listener's."""
    return ["bench", "x" * 60, 1, 2]


class Counter:
    """B's channel listener for the channel parts (the cluster is one too: it ignores 'bench')."""
    count = 0

    def accept(self, msg, sender):
        return True

    def message_received(self, msg, sender):
        Counter.count += 1


def setup_chsend(pair, n):
    pair.b.channel.add_channel_listener(Counter())
    return n


def run_chsend(pair, n):
    pair.sink.frames.clear()
    channel, members, wire = pair.a.channel, [pair.lb], small_message()
    for _ in range(n):
        channel.send(members, wire, 0)
    return n


def setup_chrecv(pair, n):
    setup_chsend(pair, n)
    run_chsend(pair, n)
    return pair.take()


def run_chrecv(pair, frames):
    before = Counter.count
    pair.serve_b(frames)
    assert Counter.count - before == len(frames)
    return len(frames)


def setup_loop(pair, n):
    """A's real transport (a fresh one, no sink) to B's started receiver over 127.0.0.1."""
    from pycat.tribes.transport.sender import PooledParallelSender
    pair.b.channel.add_channel_listener(Counter())
    transport = PooledParallelSender()
    transport.start()
    pair.a.channel.sender.transport = transport
    return n


def run_loop(pair, n):
    import gevent
    channel, members, wire = pair.a.channel, [pair.lb], small_message()
    target = Counter.count + n
    for i in range(n):
        channel.send(members, wire, 0)
        if i % 16 == 15:
            gevent.sleep(0)           # let B's connection greenlet read (a node's hub would)
    deadline = time.monotonic() + 30
    while Counter.count < target and time.monotonic() < deadline:
        gevent.sleep(0.0005)
    assert Counter.count >= target, (Counter.count, target)
    return n


SETUP = {"send": setup_send, "apply": setup_apply, "delta": setup_delta, "delta-req": setup_delta,
         "dapply": setup_dapply, "chsend": setup_chsend, "chrecv": setup_chrecv, "loop": setup_loop}
RUN = {"send": run_send, "apply": run_apply, "delta": run_delta, "delta-req": run_delta_req,
       "dapply": run_dapply, "chsend": run_chsend, "chrecv": run_chrecv, "loop": run_loop}
PREPARE = {"dapply": prepare_dapply}      # untimed work before each timed run
UNIT = {"send": "session", "apply": "session", "delta": "request", "delta-req": "request",
        "dapply": "delta", "chsend": "message", "chrecv": "message", "loop": "message"}


def count_for(part, args):
    if part in ("send", "apply"):
        return args.n
    return args.messages


def measure(part, args):
    """[(CPU seconds per item)] of --repeat runs of one part, each after the part's preparation."""
    pair = Pair()
    try:
        state = SETUP[part](pair, count_for(part, args))
        prepare = PREPARE.get(part)
        out = []
        for rep in range(args.repeat + 1):
            if prepare is not None:
                state = prepare(pair, state)
            t0 = time.process_time()
            items = RUN[part](pair, state)
            took = time.process_time() - t0
            if rep:                              # the first run is a warm-up
                out.append(took / items)
        return out
    finally:
        pair.close()


def count_once(part, args, reps, run=True):
    """For --callgrind's child: setup, then ``reps`` runs of the part (each after the part's
    preparation; with ``run`` False the preparations alone)."""
    pair = Pair()
    state = SETUP[part](pair, count_for(part, args))
    prepare = PREPARE.get(part)
    items = 0
    for _ in range(reps):
        if prepare is not None:
            state = prepare(pair, state)
        if run:
            items = RUN[part](pair, state)
    print("ITEMS %d" % (items or count_for(part, args)))


COLLECTED = re.compile(r"Collected : (\d+)")


def callgrind(part, args):
    """Instructions per item: (Ir with 3 runs - Ir with 1 run) / 2 / items (module doc); for a
    part with a preparation, less what the preparations alone cost."""
    if part in PREPARE:
        return _instructions(part, args, True) - _instructions(part, args, False)
    return _instructions(part, args, True)


def _instructions(part, args, run):
    counts = []
    items = None
    env = dict(os.environ, PYTHONHASHSEED="0")
    for reps in (1, 3):
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
               os.path.abspath(__file__), "--child", part, "--reps", str(reps), "--n", str(args.n),
               "--messages", str(args.messages)] + ([] if run else ["--no-run"])
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        found = COLLECTED.search(proc.stderr)
        if proc.returncode or not found:
            raise SystemExit("callgrind run of %s failed:\n%s\n%s" % (part, proc.stdout[-2000:], proc.stderr[-3000:]))
        items = int(re.search(r"ITEMS (\d+)", proc.stdout).group(1))
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / 2 / items


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default=",".join(p for p in PARTS),
                        help="comma-separated, of: %s (and delta-rc)" % ", ".join(PARTS))
    parser.add_argument("--n", type=int, default=10000, help="sessions for send/apply")
    parser.add_argument("--messages", type=int, default=2000, help="requests / messages for the other parts")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per part (median)")
    parser.add_argument("--callgrind", action="store_true", help="instruction counts instead of timings")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--no-run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import logging
    logging.basicConfig(level=logging.WARNING)
    if args.child:
        count_once(args.child, args, args.reps, not args.no_run)
        return
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if "delta" in parts and "delta-req" not in parts:
        parts.insert(parts.index("delta") + 1, "delta-req")
    print("pycat %s, Python %s, load average %s" % (HOME, sys.version.split()[0],
                                                   " ".join("%.2f" % x for x in os.getloadavg())))
    got = {}
    for part in parts:
        if args.callgrind:
            if part == "loop":
                continue
            got[part] = ir = callgrind(part, args)
            print("  %-9s %12.0f instructions per %s" % (part, ir, UNIT[part]), flush=True)
        else:
            runs = measure(part, args)
            got[part] = statistics.median(runs)
            print("  %-9s %8.2f us per %s (median of %d; runs %s)" % (
                part, got[part] * 1e6, UNIT[part], len(runs), " ".join("%.2f" % (r * 1e6) for r in runs)), flush=True)
        if part == "delta-req" and "delta" in got:
            rc = got["delta"] - got["delta-req"]
            print("  %-9s %s per request (delta - delta-req: request_completed's share)" % (
                "delta-rc", "%12.0f instructions" % rc if args.callgrind else "%8.2f us" % (rc * 1e6)), flush=True)
    gc.collect()


if __name__ == "__main__":
    main()
