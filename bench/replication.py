#!/usr/bin/env python3
"""bench/replication: what DeltaManager session replication costs, with two real nodes A and B.

NOTES. Full run (``--profile-nodes --profile 10000``) of commit 191d3d1, 2026-12-02, 2 vCPU KVM
(AMD EPYC), Python 3.11.7, wrk -t1 -c50; wrk, A and B share the 2 cores; other test suites ran at
times, so ratios moved between full runs (async: 0.38, 0.42, 0.47, 0.41). Medians.

    figure                                      pycat 191d3d1         target      Tomcat 10
    async mutating / no-session req/s on A      0.41 (0.39-0.49)      >= 0.6      0.54           MISSED
    sync  mutating / no-session req/s on A      0.34 (0.29-0.34)
    async latency A's response -> B, p50/p99    -0.24 / 2.2 ms        1 / 5 ms    1.2 / 7.6-9.5  met
    state transfer 10k / 100k (B's figure)      1.67 s / 17.0 s       0.3 / 3 s   0.61 s / fails MISSED 5.5x
      the same before 191d3d1 (94d8781)         2.73 s / 30.0 s
    memory per replicated session on B (100k)   4.47 KB (A holds the same sessions in 2.90 KB)

Latency: B had the value before the client had A's response in 63% of the samples (the delta is
written before the response); from the request's send to readable on B: p50 2.1, p99 4.9 ms.

Where the time goes.
* Throughput: A's CPU per request is 221 us without a session, 480 us mutating (async), 668 us
  (sync: + the ACK read and a wake-up). Probes (async, per delta, the greenlet's own CPU):
  ReplicationValve 238 us, of which cluster.send 161 (codec.dumps 45 for a ~460-byte delta that
  is 41 codec items in three nested envelopes; transport.send_message 68 for one non-blocking
  write; ChannelData and interceptors ~25) and ~55 in request_completed outside send, tracker
  and to_plain; JvmRouteBinderValve._bind 20, DeltaSession.access 22. The extra nodes agree
  roughly (+-40 us between runs): session +45, bookkeeping with no member +129, encoding and
  sending +86. B spends 289 us per delta (codec.loads 74, the manager 50, the rest in receiver
  and channel), taken from A or wrk on 2 cores; with B elsewhere A's CPU alone would allow ~0.46,
  and the node with no member to send to reaches 0.52-0.58.
* State transfer (191d3d1 acknowledges data on arrival: A encodes while B applies, so the slower
  side bounds it): in-process per session, receiver 118 us (codec.loads 74, parse_record 19,
  _replica_from_record 22), sender 97 us (to_record 54: needs_trust walks every value, 26, then
  attr_values.encode walks it again, 28; codec.dumps 41); end to end 170 us/session, both
  processes sharing 2 cores. GC is not a factor. A's RSS grows 5 MB during a 100k transfer; B's
  peak is its final size.
* Memory: B holds 1.5 KB/session more than A, mostly decoded strings: every dict key and short
  value ("lang", "sku", "en") is a new str per session. Interning decoded str <= 16 chars
  (in-process experiment): 4112 -> 3188 B/session.
Suggestions. (1) A C (or Cython) codec, same format and checks: it is the top item on both sides
(C pickle/orjson do these records in 8-11 us vs 35/49 here). (2) One flat positional envelope per
delta instead of three nested dicts (17 key strings): about half the items. (3) Sender: encode
each value once (drop the needs_trust pre-pass in _record_encoder, check encode's "B" tag: -25
us/session); on B, reuse the Member decoded from the same record bytes (Member.decode per
message); cache ``trusted`` (two imports per call). (4) Transfer: one codec pass per chunk instead
of codec.dumps per record plus the message around the list of bytes; no re-validation in
parse_record of what the codec already checked. (5) A bounded memo of decoded dict keys and
attribute names (not sys.intern of peer data): -22% memory per replica. 10k in 0.3 s means 30 us
per session on the slower side: only a C codec that does attr_values' conversion and the record
checks in the same pass gets there.

NOTES, 2026-12-02 later (lazy copies, one-pass records, flat envelopes; uncommitted tree on top of
81fd0f5), the same machine with another test suite running: every figure below is a median of runs
interleaved with the tree before (81fd0f5, run from a ``git archive`` copy), so both saw the same load.

    figure                                      before (81fd0f5)      after                 target
    state transfer 1k / 10k / 100k (B reports)  265 / 1698 / 19244 ms 62 / 350 / 3813 ms    10k 300, 100k 3000
    B's peak RSS at 100k                        485 MB                199-202 MB
    memory per replicated session (100k)        4.48 KB               1.58 KB (A: 2.90 KB)
    (throughput: see the README's table)

Where the time went. The joiner keeps each session as its record (session_table.py) and reads only
its head (id, interval): ~9 us per session in-process instead of ~150, so the sender is the slower
side: delta_session.record_bytes walks each value once straight to codec bytes (attr_values.write,
the same bytes as codec.dumps(to_record())), 25-35 us per ~1 KB session in-process instead of
~70-95; in the nodes A runs at ~35 us per session. Data messages are no longer acknowledged one by
one and are cut at 256 KB (a size the socket buffers hold): with 1 MB acknowledged messages A waited
for B to read each one and sent nothing during its first 1000 sessions (10k: ~470 -> ~350 ms). The
codec itself got faster for everyone (short strings' bytes remembered both ways, scalars inline in
containers): a one-attribute delta in the flat envelope encodes in ~6-9 us and decodes in ~12-17
(the dict envelope with the old codec: 24 / 39 us). What is left on the sender is Python's cost per
item (~0.5 us for each of the ~45 values and containers of a session); the next step is still a
compiled encoder with the same format.

NOTES, 2026-12-02 night (speed pass: coalesced channel writes, list-built codec, straight writers;
uncommitted tree on top of 86709bd). Quiet machine (load average 0.5-1). "before" is the same tree
with the replication and channel files at HEAD (so the other helpers' HTTP-path changes are in
both), run from a copy right before or after "after"; medians:

    figure                                      before                after                 target
    async mutating / no-session on A            0.48 (4 runs: 0.47-0.49) 0.61 (4 runs: 0.60-0.62)  >= 0.6 met
    sync  the same                              0.36                  0.41
    CPU per mutating request, async: A / B      222 / 114 us          167 / 41 us
    "+ encoding and sending to B" (layers)      +76 us                +22 us
    async latency A's response -> B, p50/p99    -0.07 / 0.16 ms       0.06 / 0.15 ms        1 / 5 ms
    state transfer 1k / 10k / 100k (B reports)  28 / 205 / 1800 ms    21 / 150 / 1160 ms    10k 300, 100k 3000

Where it went. (1) PooledParallelSender writes the no-ack frames of one event-loop turn to a member
with one send() (the first sender yields once, the others join it and wait for the write): under
wrk -c50 a turn holds ~50 deltas, so A makes one write and B one wake-up per turn instead of per
request; B's CPU per delta fell to a third. (2) The codec encodes into a list joined once
(list.append instead of growing a bytearray), with heads of short strings/lists and small ints
made in advance and session ids memoised; the delta and its SessionMessage are written straight
(DeltaRequest.to_encoded, SessionMessage.encoded: codec.Encoded items, the same bytes).
(3) The sender of a state transfer: record_bytes builds a list of parts, writes plain values
with one call per attribute (no name filter) and no set of visited containers (the depth limit
finds cycles, with the same answer): ~135k -> ~80k instructions per session; the joiner reads
a record's head with two struct calls. (4) The channel's fixed costs: a pool per member found
with one hash, no socket settimeout unless the deadline moved, message ids from a counter, the
frame head packed once, membership queries sent straight to the interceptor that answers them.
bench/replication_inproc.py measures each part in one process (instruction counts with
--callgrind). What is left on A: the DeltaManager's bookkeeping (+29 us, the "no member" node),
which is now larger than sending; the codec's ~0.3 us per item on B.

METHOD. Two ``python -m pycat run`` nodes on 127.0.0.1, each a temporary CATALINA_BASE made here
(the bench imports nothing from tests/): an Engine with ``jvmRoute`` (nodeA / nodeB) holding the
cluster how-to's <Cluster>: DeltaManager, a GroupChannel with McastService on a random 228.x.y.z
group bound to 127.0.0.1, NioReceiver on 127.0.0.1, PooledParallelSender, TcpFailureDetector,
MessageDispatchInterceptor, ReplicationValve, JvmRouteBinderValve, ClusterSessionListener;
``channelSendOptions`` 8 (async) or 6 (sync: the response waits for B's acknowledgement). One
distributable WSGI app at /app (source below, APP) answers:

    /none           touches no session (the baseline)              -> "ok"
    /inc            session["count"] += 1 (creates)                -> the new count
    /fill?n=N       N sessions of ~1 KB made directly through the manager (create_session and
                    set_attribute(track=False)): nothing is replicated, B is started afterwards
    /watch?id=SID   (on B) wrap the manager's ``_handle`` (the instance attribute; pycat is not
                    changed) so that, after each received message for SID, the time
                    (time.monotonic(), CLOCK_MONOTONIC: one clock for every process) at which the
                    session's count became readable is recorded
    /wait?id=SID&value=X&ms=T  (on B) block until count X of SID was recorded, up to T ms; returns
                    that time, so the latency is measured on B's side, with no polling
    /sum, /stats, /count  the sum of counts over the local sessions, the manager's counters, and
                    len(sessions) + pid

1. Throughput, per mode. ``--users`` sessions are created on A over HTTP (so they replicate to B);
   wrk (-t1, ``--connections``) then loads A with a Lua script that gives every request the cookie
   of the next session in the pool (wrk cannot tie a cookie to a connection; with a pool much
   larger than the connection count two connections rarely hold one session at once). The
   baseline is the same script against /none (same cookies, same bytes). After a warm-up of each,
   the rounds are interleaved: no-session, mutating, no-session, mutating, ... (``--rounds``).
   Reported: medians over rounds of req/s, p50/p99, and of A's and B's CPU time per request
   (/proc utime+stime over the run / requests); the headline is the median of the per-round
   ratios mutating / no-session (target >= 0.6 async; Tomcat 10: 0.54). Then A's and B's sums of
   counts are compared (every delta applied on B?) and A's counter of deltas sent.
   On a 2-core machine wrk, A and B share two cores: B's CPU for applying deltas is taken from
   A or wrk, so the req/s ratio is the "whole cluster on one box" figure; the CPU/req columns
   show each process's own cost, which contention hardly moves.
2. Latency, per mode. One session; ``--samples`` times (after 50 untimed): GET /inc on A over a
   keep-alive connection, note t_resp when the response is read, then GET /wait on B, which
   returns t_visible, the moment B's copy held the new count. Reported: p50/p99 of
   t_visible - t_resp (negative: B had it before the client had A's answer, by design in sync mode
   and usual in async mode, where the delta is written before the response), the share of samples
   visible by t_resp, and p50/p99 of t_visible - t_sent (request sent to A -> readable on B; always
   positive: an upper bound on the replication latency). Targets p50 <= 1 ms, p99 <= 5 ms
   (Tomcat: 1.2 / 7.6-9.5 ms).
3. State transfer (mode 8; its messages are acknowledged whatever the mode). A is
   started and filled with N sessions (/fill, 10k per request) for each N of ``--sessions`` in
   increasing order; for each N, B is started ``--transfer-rounds`` times (stopped in between) and
   measured: the ms B's DeltaManager reports ("received N sessions from ... in X ms": from its
   GET-ALL to the last message; the target is on this figure: 10k < 0.3 s, 100k < 3 s; Tomcat 10:
   10k ~0.61 s, 100k fails), A's "sent N sessions ... in M messages, T ms", the time from B's
   spawn to that log line (includes importing pycat and McastService's 2 x frequency = 1 s wait
   for members), and the peak RSS of both during the transfer (a 5 ms poll of VmRSS; A's VmHWM
   reset through /proc/PID/clear_refs before each round, B's VmHWM is its own lifetime peak).
4. Memory per replicated session: (B's RSS after startup - B's RSS after a transfer of 0
   sessions) / N, each N (medians over rounds); the 100k figure is the one to quote.
Extra nodes (``--no-extras`` leaves them out), loaded in the first mode's rounds like A: the same
app on a node without a <Cluster> (StandardManager), and on a cluster node alone in its multicast
group (DeltaManager tracking every request, nobody to send to). With A's figures they split A's CPU
per mutating request into: the request, the session, the DeltaManager's bookkeeping, and encoding +
sending the delta.
``--profile-nodes``: after the rounds, one mutating run with probes (instance attributes and module
functions wrapped from inside the app; CPU charged per greenlet through greenlet.settrace) on the
sender's and receiver's replication path, then one under cProfile in A and B (top functions by
own time, and the ha/tribes functions by cumulative time).
``--profile N``: the state transfer's CPU work in this process, no network: a DeltaManager with N
sessions answers a GET-ALL into a list (its ``_send`` replaced on the instance by one that encodes
each message as the channel would: SessionMessage.to_bytes), a second one decodes the messages and
runs ``load_records``: wall time with the GC on and off, the cost of each stage per session, and
cProfile's top functions of each side.

    python bench/replication.py                       # full run (~6 min on 2 cores)
    python bench/replication.py --quick               # smoke run, < 60 s
    python bench/replication.py --modes 8 --sessions 10000 --transfer-rounds 5
    python bench/replication.py --profile-nodes --profile 10000     # and where the time goes
    python bench/replication.py --skip-throughput --skip-latency --sessions 100000 --keep
"""
import os
import sys

# bench/http.py sits next to this file: run as a script, this folder must not shadow the stdlib's http
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402
import datetime  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

HOME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HOME)
MODES = {8: "async", 6: "sync"}
FILL_CHUNK = 10000

SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="{http_port}" address="127.0.0.1" protocol="HTTP/1.1" connectionTimeout="20000"/>
    <Engine name="Catalina" defaultHost="localhost" jvmRoute="{route}">
{cluster}      <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="false">{access_log}
      </Host>
    </Engine>
  </Service>
</Server>
"""
CLUSTER_XML = """
      <Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster" channelSendOptions="{send_options}">
        <Manager className="org.apache.catalina.ha.session.DeltaManager" expireSessionsOnShutdown="false"
                 notifyListenersOnReplication="true" stateTransferTimeout="120"/>
        <Channel className="org.apache.catalina.tribes.group.GroupChannel">
          <Membership className="org.apache.catalina.tribes.membership.McastService" address="{group}"
                      port="{mcast_port}" bind="127.0.0.1" frequency="500" dropTime="3000"/>
          <Receiver className="org.apache.catalina.tribes.transport.nio.NioReceiver" address="127.0.0.1"
                    port="{rx_port}" autoBind="1" selectorTimeout="5000" maxThreads="6"/>
          <Sender className="org.apache.catalina.tribes.transport.ReplicationTransmitter">
            <Transport className="org.apache.catalina.tribes.transport.nio.PooledParallelSender"/>
          </Sender>
          <Interceptor className="org.apache.catalina.tribes.group.interceptors.TcpFailureDetector"/>
          <Interceptor className="org.apache.catalina.tribes.group.interceptors.MessageDispatchInterceptor"/>
        </Channel>
        <Valve className="org.apache.catalina.ha.tcp.ReplicationValve" filter=""/>
        <Valve className="org.apache.catalina.ha.session.JvmRouteBinderValve"/>
        <ClusterListener className="org.apache.catalina.ha.session.ClusterSessionListener"/>
      </Cluster>
"""
ACCESS_LOG = """
        <Valve className="org.apache.catalina.valves.AccessLogValve" directory="logs"
               prefix="localhost_access_log" suffix=".txt" pattern="common"/>"""

WEB_XML = """<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0">
  <distributable/>
  <servlet><servlet-name>bench</servlet-name><servlet-class>repl_bench:application</servlet-class></servlet>
  <servlet-mapping><servlet-name>bench</servlet-name><url-pattern>/*</url-pattern></servlet-mapping>
</web-app>
"""

# ~1 KB of typical attributes per session (bench/sessions.py's payload); shared by the app and --profile
PAYLOAD = r'''
def payload(i):
    """About 1 KB of typical attributes, distinct objects per session."""
    return {
        "user": "user%07d" % i,
        "roles": ["user", "reader", "team-%d" % (i % 50)],
        "prefs": {"lang": "en", "tz": "UTC", "page_size": 20, "theme": "dark", "visits": i},
        "cart": [{"sku": "SKU-%06d" % (i + k), "qty": k + 1} for k in range(4)],
        "blob": ("%08d" % i) * 96,  # 768 chars
    }
'''

APP = r'''"""bench/replication.py's app (its docstring documents the endpoints)."""
import json
import os
import time
from urllib.parse import parse_qs

import gevent
import gevent.event
import greenlet
''' + PAYLOAD + r'''
_watched = {}        # session id -> {count: time.monotonic() when B's copy first held it}
_changed = gevent.event.Event()
_installed = []
_filled = [0]
_prof = []


def _text(start_response, text, status="200 OK"):
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _json(start_response, obj):
    body = json.dumps(obj).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _manager(environ):
    return environ["pycat.request"].context.manager


def _install(manager):
    """Wrap this manager's received-message handler: after each message about a watched session,
    note when its count became readable here."""
    if _installed:
        return
    original = manager._handle
    sessions = manager._sessions

    def handle(message, sender):
        original(message, sender)
        times = _watched.get(message.session_id)
        if times is None:
            return
        session = sessions.get(message.session_id)
        if session is None:
            return
        count = session.raw_attributes().get("count")
        if count is not None and count not in times:
            times[count] = time.monotonic()
            _changed.set()

    manager._handle = handle
    _installed.append(original)


_probes = {}        # name -> [calls, thread CPU seconds, wall seconds]
_undo = []


_gcpu = {}          # greenlet -> thread CPU seconds it used, up to its last switch
_last = [0.0]


def _tracer(event, args):
    """greenlet.settrace hook: charge the CPU since the last switch to the greenlet switched away from."""
    if event == "switch" or event == "throw":
        now = time.thread_time()
        origin = args[0]
        _gcpu[origin] = _gcpu.get(origin, 0.0) + now - _last[0]
        _last[0] = now


def _own_cpu():
    """CPU seconds the current greenlet has used while _tracer was on (excludes other greenlets')."""
    return _gcpu.get(greenlet.getcurrent(), 0.0) + time.thread_time() - _last[0]


def _wrap(obj, attr, name):
    own = attr in getattr(obj, "__dict__", {})
    original = getattr(obj, attr)
    stats = _probes.setdefault(name, [0, 0.0, 0.0])
    cpu, wall = _own_cpu, time.perf_counter

    def probe(*a, **kw):
        c0, w0 = cpu(), wall()
        try:
            return original(*a, **kw)
        finally:
            stats[0] += 1
            stats[1] += cpu() - c0
            stats[2] += wall() - w0

    setattr(obj, attr, probe)
    _undo.append((obj, attr, original, own))


def _instrument(manager):
    """Probes on this node's replication path (instance attributes and module functions; nothing
    in pycat is changed on disk). CPU is the calling greenlet's own (a greenlet.settrace hook
    charges each switch), wall includes waits."""
    from pycat.ha.replication_valve import ReplicationValve
    from pycat.ha.jvm_route_binder import JvmRouteBinderValve
    from pycat.ha.session.delta import DeltaRequest
    from pycat.ha.session.delta_session import DeltaSession
    from pycat.ha.session.tracker import DeltaTracker
    from pycat.tribes.io import codec
    _gcpu.clear()
    _last[0] = time.thread_time()
    greenlet.settrace(_tracer)
    cluster = manager.cluster
    channel = cluster.channel
    sender = channel.coordinator.sender
    transport = getattr(sender, "transport", None) or sender
    valves = getattr(cluster, "valves", ())
    replication = [v for v in valves if isinstance(v, ReplicationValve)]
    binder = [v for v in valves if isinstance(v, JvmRouteBinderValve)]
    for obj, attr, name in (
            (replication[0] if replication else None, "_replicate", "A ReplicationValve._replicate (all below)"),
            (manager, "request_completed", "A  manager.request_completed (all below)"),
            (DeltaTracker, "finish", "A   DeltaTracker.finish"),
            (DeltaTracker, "flush", "A   DeltaTracker.flush"),
            (DeltaRequest, "to_plain", "A   DeltaRequest.to_plain"),
            (cluster, "send", "A   cluster.send (all below)"),
            (channel, "send", "A    channel.send (all below)"),
            (codec, "dumps", "A     codec.dumps"),
            (transport, "send_message", "A     transport.send_message"),
            (binder[0] if binder else None, "_bind", "A JvmRouteBinderValve._bind"),
            (DeltaSession, "access", "A DeltaSession.access (all below)"),
            (manager, "begin_tracking", "A  manager.begin_tracking"),
            (channel, "message_received", "B channel.message_received (all below)"),
            (codec, "loads", "B  codec.loads"),
            (manager, "message_received", "B  manager.message_received")):
        if obj is not None:
            _wrap(obj, attr, name)


def application(environ, start_response):
    global _changed
    path = environ.get("PATH_INFO") or "/"
    if path == "/none":
        return _text(start_response, "ok")
    if path == "/inc":
        s = environ["pycat.session"]
        count = s.get("count", 0) + 1
        s["count"] = count
        return _text(start_response, str(count))
    args = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    manager = _manager(environ)
    if path == "/fill":
        t0 = time.perf_counter()
        for _ in range(int(args["n"])):
            session = manager.create_session()
            for name, value in payload(_filled[0]).items():
                session.set_attribute(name, value, False, False)      # no listeners, no tracking
            _filled[0] += 1
        return _json(start_response, {"sessions": len(manager._sessions), "seconds": time.perf_counter() - t0})
    if path == "/watch":
        _install(manager)
        _watched[args["id"]] = {}
        session = manager._sessions.get(args["id"])
        return _json(start_response, {"found": session is not None})
    if path == "/wait":
        times = _watched[args["id"]]
        value = int(args["value"])
        deadline = time.monotonic() + int(args.get("ms", "1000")) / 1000.0
        while value not in times:
            left = deadline - time.monotonic()
            if left <= 0:
                return _json(start_response, {"t": None})
            event = _changed
            event.wait(left)
            if event is _changed:
                _changed = gevent.event.Event()
        return _json(start_response, {"t": times.pop(value)})
    if path == "/sum":
        total = sum(s.raw_attributes().get("count", 0) for s in list(manager._sessions.values()))
        return _json(start_response, {"sum": total, "sessions": len(manager._sessions)})
    if path == "/stats":
        return _json(start_response, {k: v for k, v in vars(manager).items()
                                      if k.startswith("counter_") and isinstance(v, int)})
    if path == "/count":
        return _json(start_response, {"sessions": len(manager._sessions), "pid": os.getpid()})
    if path == "/instrument/start":    # time some calls of the replication path (CPU of this thread, wall)
        _instrument(manager)
        return _json(start_response, {"probes": sorted(_probes)})
    if path == "/instrument/stop":
        for obj, attr, original, own in reversed(_undo):
            if own:
                setattr(obj, attr, original)
            else:
                delattr(obj, attr)
        del _undo[:]
        greenlet.settrace(None)
        _gcpu.clear()
        out = {name: {"calls": c, "cpu": cpu, "wall": wall} for name, (c, cpu, wall) in _probes.items()}
        _probes.clear()
        return _json(start_response, out)
    if path == "/prof/start":          # cProfile of this process (every greenlet of the hub's thread)
        import cProfile
        _prof[:] = [cProfile.Profile()]
        _prof[0].enable()
        return _json(start_response, {"profiling": True})
    if path == "/prof/stop":
        prof = _prof.pop()
        prof.disable()
        prof.dump_stats(args["file"])
        return _json(start_response, {"file": args["file"]})
    return _text(start_response, "no such endpoint %s" % path, "404 Not Found")
'''

# wrk: every request carries the cookie of the next session of the pool (file given after --)
WRK_LUA = r'''
local cookies = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do cookies[#cookies + 1] = "JSESSIONID=" .. line end
  i = math.random(#cookies)
end
function request()
  i = i + 1
  if i > #cookies then i = 1 end
  return wrk.format("GET", nil, {["Cookie"] = cookies[i]})
end
'''

RECEIVED = re.compile(r"received (\d+) sessions from (\S+) in (\d+) ms")
SENT = re.compile(r"sent (\d+) sessions to (\S+) in (\d+) messages, (\d+) ms")
LOG_TIME = re.compile(r"^(\d\d-\w\w\w-\d{4} \d\d:\d\d:\d\d\.\d{3}) ", re.M)


# -- processes and /proc ---------------------------------------------------------------------------
def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid, field):
    """VmRSS / VmHWM of pid in MB (nan when gone)."""
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def reset_hwm(pid):
    """Reset the process's peak RSS (VmHWM) to its current RSS; False if the kernel refuses."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            fields = fh.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class RssPoller(threading.Thread):
    """Peak VmRSS of some pids, polled every ``interval`` s until stop()."""

    def __init__(self, pids, interval=0.005):
        super().__init__(daemon=True)
        self.pids, self.interval = pids, interval
        self.peak = {pid: 0.0 for pid in pids}
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            for pid in self.pids:
                rss = proc_status(pid, "VmRSS")
                if rss == rss and rss > self.peak[pid]:
                    self.peak[pid] = rss
            self._stop_event.wait(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join()
        return self.peak


class Node:
    """One node's CATALINA_BASE and ``pycat run`` process (stdout and stderr in logs/out)."""

    def __init__(self, root, route, send_options, group, mcast_port, access_log):
        self.name, self.base = route, os.path.join(root, route)
        self.http_port, self.rx_port = free_port(), free_port()
        self.proc = None
        self.pool = None               # the cookie file of its session pool, once made
        self.started_at = 0.0          # time.time() just before the spawn
        self.mark = 0
        classes = os.path.join(self.base, "webapps", "app", "WEB-INF", "classes")
        for d in ("conf", "logs", "work", "temp", classes):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        for name in ("web.xml", "context.xml", "logging.ini"):
            src = os.path.join(HOME, "conf", name)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(self.base, "conf", name))
        with open(os.path.join(self.base, "conf", "server.xml"), "w") as fh:
            cluster = "" if send_options is None else CLUSTER_XML.format(
                send_options=send_options, group=group, mcast_port=mcast_port, rx_port=self.rx_port)
            fh.write(SERVER_XML.format(http_port=self.http_port, route=route, cluster=cluster,
                                       access_log=ACCESS_LOG if access_log else ""))
        with open(os.path.join(self.base, "webapps", "app", "WEB-INF", "web.xml"), "w") as fh:
            fh.write(WEB_XML)
        with open(os.path.join(classes, "repl_bench.py"), "w") as fh:
            fh.write(APP)
        self.out = os.path.join(self.base, "logs", "out")
        env = dict(os.environ, CATALINA_BASE=self.base, CATALINA_HOME=HOME)
        for key in ("CATALINA_PID", "CATALINA_OUT", "JAVA_OPTS", "CATALINA_OPTS"):
            env.pop(key, None)
        extra = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
        env["PYTHONPATH"] = os.pathsep.join([HOME] + extra)
        self.env = env

    @property
    def pid(self):
        return self.proc.pid

    def log(self, since=None):
        try:
            with open(self.out, "rb") as fh:
                fh.seek(self.mark if since is None else since)
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def start(self):
        self.mark = os.path.getsize(self.out) if os.path.exists(self.out) else 0
        out = open(self.out, "ab")
        try:
            self.started_at = time.time()
            self.proc = subprocess.Popen([sys.executable, "-m", "pycat", "run"], env=self.env, cwd=self.base,
                                        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            out.close()
        return self

    def wait_log(self, pattern, timeout=60.0, interval=0.002):
        """The first match of pattern (str or regex) in this process's log; SystemExit on timeout/exit."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            found = pattern.search(text) if hasattr(pattern, "search") else (pattern in text)
            if found:
                return found
            if self.proc.poll() is not None:
                raise SystemExit("%s exited with %s; its log:\n%s" % (self.name, self.proc.returncode,
                                                                      self.log()[-4000:]))
            if time.monotonic() > deadline:
                raise SystemExit("%s: no %r within %.0f s; its log:\n%s" % (
                    self.name, getattr(pattern, "pattern", pattern), timeout, self.log()[-4000:]))
            time.sleep(interval)

    def line_time(self, match):
        """The wall time (time.time()) of the log line holding ``match`` (ms resolution), or None."""
        text = self.log()
        start = text.rfind("\n", 0, match.start()) + 1
        stamp = LOG_TIME.match(text, start)
        if not stamp:
            return None
        return datetime.datetime.strptime(stamp.group(1), "%d-%b-%Y %H:%M:%S.%f").timestamp()

    def wait_started(self, timeout=60.0):
        self.wait_log("Server startup in", timeout)

    def wait_member(self, other, timeout=30.0):
        self.wait_log("Replication member added:[Member(tcp://127.0.0.1:%d," % other.rx_port, timeout)

    def stop(self, timeout=60):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def unique_group():
    """(a random 228.x.y.z multicast group, a free UDP port): a cluster no other run meets."""
    rng = random.SystemRandom()
    return ("228.%d.%d.%d" % (rng.randrange(1, 255), rng.randrange(256), rng.randrange(1, 255)),
            free_port(socket.SOCK_DGRAM))


class Pair:
    """Nodes A and B of one cluster (their own multicast group), under a temporary root."""

    def __init__(self, send_options, access_log):
        self.root = tempfile.mkdtemp(prefix="pycat-bench-repl-")
        group, mcast_port = unique_group()
        self.a = Node(self.root, "nodeA", send_options, group, mcast_port, access_log)
        self.b = Node(self.root, "nodeB", send_options, group, mcast_port, access_log)

    def start_both(self):
        self.a.start()
        self.a.wait_started()
        self.b.start()
        self.b.wait_started()
        self.a.wait_member(self.b)
        self.b.wait_member(self.a)

    def close(self, keep):
        for node in (self.b, self.a):
            node.stop()
        if keep:
            print("CATALINA_BASEs kept under %s" % self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)


# -- HTTP ------------------------------------------------------------------------------------------
class Client:
    """One keep-alive connection to a node; reconnects when the server closes it."""

    def __init__(self, port, timeout=30.0):
        self.port, self.timeout = port, timeout
        self.conn = None

    def get(self, path, cookie=None):
        """(status, body bytes, JSESSIONID from Set-Cookie or None)."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                self.conn.connect()
                self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self.conn.request("GET", path, headers={"Cookie": "JSESSIONID=" + cookie} if cookie else {})
                resp = self.conn.getresponse()
                body = resp.read()
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise
                continue
            new = None
            for value in resp.headers.get_all("Set-Cookie") or ():
                if value.startswith("JSESSIONID="):
                    new = value.split(";", 1)[0].split("=", 1)[1]
            if resp.will_close:
                self.close()
            return resp.status, body, new

    def json(self, path, cookie=None):
        status, body, _ = self.get(path, cookie)
        if status != 200:
            raise SystemExit("GET %s on port %d -> %d %r" % (path, self.port, status, body[:300]))
        return json.loads(body)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def parse_duration_ms(text):
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(port, path, duration, args, script, cookie_file):
    cmd = ["wrk", "-t1", "-c%d" % args.connections, "-d%ds" % duration, "--latency", "-s", script,
           "http://127.0.0.1:%d%s" % (port, path), "--", cookie_file]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": parse_duration_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
            "p99": parse_duration_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else ""}


def median(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


# -- 1. throughput -----------------------------------------------------------------------------------
def make_pool(node, root, users):
    """``users`` sessions created on ``node`` over HTTP; writes the wrk script and cookie file, returns
    (script, cookie file)."""
    client = Client(node.http_port)
    cookies = []
    for _ in range(users):
        status, body, cookie = client.get("/app/inc")
        if status != 200 or not cookie:
            raise SystemExit("creating the session pool on %s: %d %r" % (node.name, status, body[:200]))
        cookies.append(cookie)
    client.close()
    cookie_file = os.path.join(root, "cookies-%s.txt" % node.name)
    with open(cookie_file, "w") as fh:
        fh.write("\n".join(cookies) + "\n")
    script = os.path.join(root, "cookies.lua")
    with open(script, "w") as fh:
        fh.write(WRK_LUA)
    return script, cookie_file


def bench_throughput(pair, args, mode, extras=()):
    """Interleaved wrk runs on A (no-session, mutating) and on each of ``extras`` (nodes that are not
    part of this pair: see main); returns the runs and the checks."""
    a, b = pair.a, pair.b
    script, cookie_file = make_pool(a, pair.root, args.users)
    settle(pair)       # B holds the pool before the load starts
    targets = [("none", a, cookie_file), ("inc", a, cookie_file)]
    for node in extras:
        if node.pool is None:
            node.pool = make_pool(node, os.path.dirname(node.base), args.users)[1]
        targets += [(node.name + "-none", node, node.pool), (node.name + "-inc", node, node.pool)]
    runs = {kind: [] for kind, _, _ in targets}

    def one(kind, node=a, cookies=cookie_file):
        cpu_a, cpu_b = cpu_seconds(node.pid), cpu_seconds(b.pid)
        r = run_wrk(node.http_port, "/app/" + kind.split("-")[-1], args.duration if kind in runs else
                    args.warmup, args, script, cookies)
        r["cpu_a"] = (cpu_seconds(node.pid) - cpu_a) * 1e6 / max(1, r["requests"])
        r["cpu_b"] = (cpu_seconds(b.pid) - cpu_b) * 1e6 / max(1, r["requests"]) if node is a else float("nan")
        return r

    if args.warmup > 0:
        for kind, node, cookies in targets:
            one("warm-" + kind, node, cookies)
    for rnd in range(args.rounds):
        for kind, node, cookies in targets:
            runs[kind].append(one(kind, node, cookies))
        print("  %s round %d/%d: %s" % (MODES[mode], rnd + 1, args.rounds, ", ".join(
            "%s %.0f" % (kind, runs[kind][-1]["rps"]) for kind, _, _ in targets)), flush=True)
    profiles = None
    if args.profile_nodes:
        for node in (a, b):
            Client(node.http_port).json("/app/instrument/start")
        r = one("inc")
        probes = {}
        for node in (a, b):
            probes.update({k: v for k, v in Client(node.http_port).json("/app/instrument/stop").items()
                           if k.startswith(node.name[-1])})
        print("  %s: one more mutating run with probes on the replication path: %d requests, %.0f req/s, A CPU "
              "%.0f us/req, B CPU %.0f us/req" % (MODES[mode], r["requests"], r["rps"], r["cpu_a"], r["cpu_b"]))
        print("    %-45s %9s %13s %13s   (CPU: the calling greenlet's own; wall: with waits)" % (
            "probe (A: sender, B: receiver)", "calls/req", "CPU us/call", "wall us/call"))
        for name in probes:
            p = probes[name]
            if p["calls"]:
                print("    %-45s %9.2f %13.1f %13.1f" % (name, p["calls"] / max(1, r["requests"]),
                                                        p["cpu"] / p["calls"] * 1e6, p["wall"] / p["calls"] * 1e6))
        profiles = {}
        for node in (a, b):
            Client(node.http_port).json("/app/prof/start")
        r = one("inc")
        for node in (a, b):
            path = os.path.join(pair.root, "%s-%d.prof" % (node.name, mode))
            Client(node.http_port).json("/app/prof/stop?file=" + path)
            profiles[node.name] = path
        profiles["rps"] = r["rps"]
    consistent, sums = settle(pair)
    stats_a = Client(a.http_port).json("/app/stats")
    if profiles:
        import pstats
        print("  %s: mutating load under cProfile in A and B: %.0f req/s" % (MODES[mode], profiles["rps"]))
        for name in ("nodeA", "nodeB"):
            print("\n== %s, %s mode, mutating load, top %d by own time ==" % (name, MODES[mode], args.top))
            stats = pstats.Stats(profiles[name], stream=sys.stdout)
            stats.sort_stats("tottime").print_stats(args.top)
            print("-- %s: cumulative time of the replication path (pycat/ha, pycat/tribes; gevent switches make "
                  "cumulative figures approximate) --" % name)
            stats.sort_stats("cumulative").print_stats(r"pycat/(ha|tribes)/", args.top)
    return {"runs": runs, "consistent": consistent, "sums": sums, "sent_deltas": stats_a.get("counter_send_delta"),
            "ratios": [i["rps"] / n["rps"] for n, i in zip(runs["none"], runs["inc"])]}


def settle(pair, timeout=10.0):
    """Wait until B's sessions and sum of counts equal A's; (equal?, (A's, B's))."""
    ca, cb = Client(pair.a.http_port), Client(pair.b.http_port)
    deadline = time.monotonic() + timeout
    while True:
        sa, sb = ca.json("/app/sum"), cb.json("/app/sum")
        if sa == sb or time.monotonic() > deadline:
            ca.close(), cb.close()
            return sa == sb, (sa, sb)
        time.sleep(0.05)


# -- 2. latency ----------------------------------------------------------------------------------------
def bench_latency(pair, args):
    ca, cb = Client(pair.a.http_port), Client(pair.b.http_port)
    status, body, sid = ca.get("/app/inc")
    settle(pair)
    if not cb.json("/app/watch?id=" + sid)["found"]:
        raise SystemExit("B has no copy of %s" % sid)
    after, e2e, rtt, lost = [], [], [], 0
    for i in range(args.samples + 50):
        t_sent = time.monotonic()
        status, body, _ = ca.get("/app/inc", sid)
        t_resp = time.monotonic()
        if status != 200:
            raise SystemExit("A: /inc -> %d %r" % (status, body[:200]))
        got = cb.json("/app/wait?id=%s&value=%d&ms=2000" % (sid, int(body)))
        if i < 50:
            continue
        if got["t"] is None:
            lost += 1
            continue
        after.append((got["t"] - t_resp) * 1000)
        e2e.append((got["t"] - t_sent) * 1000)
        rtt.append((t_resp - t_sent) * 1000)
    ca.close(), cb.close()
    return {"after": after, "e2e": e2e, "rtt": rtt, "lost": lost}


# -- 3/4. state transfer --------------------------------------------------------------------------------
def bench_transfer(args, sizes):
    pair = Pair(8, args.access_log)
    a = pair.a
    ca = Client(a.http_port, timeout=600)
    results = []
    try:
        a.start()
        a.wait_started()
        rss_a0 = proc_status(a.pid, "VmRSS")
        # B against an empty A: its RSS with no sessions, the baseline of the memory per session
        base = transfer_round(pair, 0)
        filled, rss_a = 0, {0: rss_a0}
        for n in sizes:
            while filled < n:
                got = ca.json("/app/fill?n=%d" % min(FILL_CHUNK, n - filled))
                filled = got["sessions"]
            time.sleep(0.3)
            rss_a[n] = proc_status(a.pid, "VmRSS")
            rounds = []
            for r in range(args.transfer_rounds):
                rounds.append(transfer_round(pair, n))
                x = rounds[-1]
                print("  transfer %6d sessions, round %d/%d: reported %s ms, A sent in %s ms, spawn -> log %.0f ms, "
                      "B RSS %.0f MB" % (n, r + 1, args.transfer_rounds, x["reported_ms"], x["sent_ms"],
                                         x["spawn_ms"], x["rss_b"]), flush=True)
            results.append((n, rounds))
    finally:
        ca.close()
        pair.close(args.keep)
    return base, rss_a, results


def transfer_round(pair, n):
    a, b = pair.a, pair.b
    mark_a = os.path.getsize(a.out)
    hwm_reset = reset_hwm(a.pid)
    rss_a_before = proc_status(a.pid, "VmRSS")
    b.start()
    poller = RssPoller([a.pid, b.pid])
    poller.start()
    try:
        match = b.wait_log(RECEIVED, timeout=300)
        seen = time.time()
        b.wait_started(timeout=300)
    finally:
        peak = poller.stop()
    logged = b.line_time(match)
    received, reported = int(match.group(1)), int(match.group(3))
    if received != n:
        raise SystemExit("B received %d sessions, A holds %d" % (received, n))
    sent = SENT.search(a.log(mark_a))
    time.sleep(0.5)
    out = {"n": n, "reported_ms": reported, "sent_ms": int(sent.group(4)) if sent else None,
           "messages": int(sent.group(3)) if sent else None,
           "spawn_ms": ((logged if logged is not None else seen) - b.started_at) * 1000,
           "startup_ms": (time.time() - b.started_at) * 1000,
           "rss_b": proc_status(b.pid, "VmRSS"), "hwm_b": proc_status(b.pid, "VmHWM"),
           "peak_b": peak[b.pid], "peak_a": peak[a.pid], "rss_a_before": rss_a_before,
           "hwm_a": proc_status(a.pid, "VmHWM") if hwm_reset else float("nan")}
    count = Client(b.http_port).json("/app/count")["sessions"]
    if count != n:
        raise SystemExit("B holds %d sessions after the transfer, expected %d" % (count, n))
    b.stop()
    return out


# -- --profile: the transfer's CPU work, in this process ------------------------------------------------
def profile_transfer(n, top):
    import cProfile
    import pstats
    from pycat.ha.session import delta as d
    from pycat.ha.session.delta_manager import DeltaManager
    namespace = {}
    exec(PAYLOAD, namespace)
    payload = namespace["payload"]
    sender = DeltaManager()
    sender.name = "/app"
    for i in range(n):
        session = sender.create_session()
        for name, value in payload(i).items():
            session.set_attribute(name, value, False, False)
    wire = []

    def send(event, session_id="", payload=None, unique_id="", dest=None, options=None):
        wire.append(d.SessionMessage(sender.cluster_manager_name, event, session_id, payload, unique_id).to_bytes())
        return len(wire)

    sender._send = send

    def run_sender():
        wire.clear()
        t0 = time.perf_counter()
        sender._send_all_sessions("joiner", "token")
        return time.perf_counter() - t0

    def run_receiver():
        receiver = DeltaManager()
        receiver.name = "/app"
        t0 = time.perf_counter()
        for blob in wire:
            message = d.SessionMessage.from_bytes(blob)
            if message.event_type == d.EVT_ALL_SESSION_DATA:
                receiver.load_records(message.payload, None)
        took = time.perf_counter() - t0
        assert len(receiver._sessions) == n, len(receiver._sessions)
        return took

    import gc
    send_s, recv_s = run_sender(), run_receiver()          # plain timings first, as a node runs them
    gc.collect()
    gc.disable()                                           # the same without the cyclic GC
    try:
        send_nogc, recv_nogc = run_sender(), run_receiver()
        stages = transfer_stages(sender, wire, d)
    finally:
        gc.enable()
    prof, prof2 = cProfile.Profile(), cProfile.Profile()
    prof.runcall(run_sender)
    prof2.runcall(run_receiver)
    print()
    print("--profile %d sessions, in-process (no network), wall time: sender %.0f ms (%.1f us/session, %d messages, "
          "%.1f MB), receiver %.0f ms (%.1f us/session); with the cyclic GC off: sender %.0f ms, receiver %.0f ms"
          % (n, send_s * 1000, send_s / n * 1e6, len(wire), sum(map(len, wire)) / 1e6, recv_s * 1000,
             recv_s / n * 1e6, send_nogc * 1000, recv_nogc * 1000))
    print("\nper-session cost of each stage, CPU time, GC off, no profiler (the stages of _send_all_sessions and "
          "load_records, each run on its own over all N sessions):")
    for side, name, us in stages:
        print("  %-8s %-64s %7.1f us" % (side, name, us))
    for title, p in (("sender: _send_all_sessions", prof), ("receiver: decode + load_records", prof2)):
        print("\n== %s under cProfile (GC on), top %d by own time ==" % (title, top))
        pstats.Stats(p, stream=sys.stdout).sort_stats("tottime").print_stats(top)


def transfer_stages(sender, wire, d):
    """[(side, stage, us per session)] of a state transfer, each stage timed on its own (CPU time)."""
    from pycat.ha.session import attr_values
    from pycat.ha.session import delta_session as ds
    from pycat.ha.session.delta_manager import DeltaManager
    from pycat.tribes.io import codec
    sessions = [s for s in sender._sessions.values() if s.valid]
    n = len(sessions)
    values = [(k, v) for s in sessions for k, v in s.raw_attributes().items()]
    encode = sender.value_encoder()
    rows = []

    def timed(side, name, fn):
        t0 = time.process_time()
        out = fn()
        rows.append((side, name, (time.process_time() - t0) / n * 1e6))
        return out

    timed("sender", "needs_trust(value) per attribute (untrusted channel check)",
          lambda: [attr_values.needs_trust(v) for _, v in values])
    timed("sender", "attr_values.encode(value) per attribute", lambda: [attr_values.encode(v) for _, v in values])
    records = timed("sender", "to_record(session, encode) (includes the two above)",
                    lambda: [ds.to_record(s, encode) for s in sessions])
    blobs = timed("sender", "codec.dumps(record)", lambda: [codec.dumps(r) for r in records])
    if hasattr(ds, "record_bytes"):                     # one pass: what _send_all_sessions runs now
        write = sender.value_writer()
        blobs = timed("sender", "record_bytes(session, write) (to_record + dumps in one pass)",
                      lambda: [ds.record_bytes(s, write) for s in sessions])
    size = max(1, sender.send_all_sessions_size)
    chunks = [blobs[i:i + size] for i in range(0, n, size)]
    timed("sender", "SessionMessage(chunk).to_bytes() (the message around the records)",
          lambda: [d.SessionMessage("/app", d.EVT_ALL_SESSION_DATA, "", c, "t").to_bytes() for c in chunks])
    data = [m for m in wire if d.SessionMessage.from_bytes(m).event_type == d.EVT_ALL_SESSION_DATA]
    timed("receiver", "SessionMessage.from_bytes(message)", lambda: [d.SessionMessage.from_bytes(m) for m in data])
    if hasattr(ds, "peek_record"):
        timed("receiver", "peek_record(record) (id and interval: what a lazy copy keeps)",
              lambda: [ds.peek_record(b) for b in blobs])
        lazy = DeltaManager()
        lazy.name = "/app"
        size = max(1, sender.send_all_sessions_size)
        timed("receiver", "load_records(chunk) (lazy: each session kept as its record)",
              lambda: [lazy.load_records(blobs[i:i + size]) for i in range(0, n, size)])
        ids = list(lazy._sessions)
        timed("receiver", "materialising each lazy copy (_sessions.get: decode, check, build)",
              lambda: [lazy._sessions.get(i) for i in ids])
    plain = timed("receiver", "codec.loads(record)", lambda: [codec.loads(b) for b in blobs])
    parsed = timed("receiver", "parse_record(record)", lambda: [ds.parse_record(r) for r in plain])
    receiver = DeltaManager()
    receiver.name = "/app"
    if hasattr(receiver, "_replica_from_record"):       # 191d3d1 on: a new copy built straight from its record
        timed("receiver", "_replica_from_record(parsed) (new copy from its record)",
              lambda: [receiver._replica_from_record(p, receiver._resolve) for p in parsed])
    else:
        replicas = timed("receiver", "_new_replica(id, ...) (session object, id, listeners)",
                         lambda: [receiver._new_replica(p[0], p[3], p[1]) for p in parsed])
        timed("receiver", "merge_record(session, parsed) (set_attribute per attribute)",
              lambda: [ds.merge_record(s, p, receiver._resolve, True) for s, p in zip(replicas, parsed)])
    return rows


# -- report --------------------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (< 60 s): small N, short rounds")
    parser.add_argument("--modes", default="8,6", help="channelSendOptions to measure: 8 or async, 6 or sync")
    parser.add_argument("--sessions", default="1000,10000,100000", help="state-transfer sizes")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved throughput rounds (median)")
    parser.add_argument("--duration", type=int, default=3, help="seconds of load per run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of untimed load per kind first")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections")
    parser.add_argument("--users", type=int, default=1000, help="sessions the load cycles through")
    parser.add_argument("--samples", type=int, default=1000, help="latency samples per mode (>= 500)")
    parser.add_argument("--transfer-rounds", type=int, default=3, help="B starts per state-transfer size")
    parser.add_argument("--access-log", action="store_true", help="an AccessLogValve on the Host (off: the "
                        "container's fixed cost is smaller, so the ratio is the stricter one)")
    parser.add_argument("--no-extras", action="store_true", help="leave out the two extra nodes (the same app "
                        "without a <Cluster>, and in a cluster without members) that split the cost of a mutating "
                        "request into session, replication bookkeeping, and encoding + sending")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-transfer", action="store_true")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also cProfile the transfer of N sessions in-process (sender and receiver)")
    parser.add_argument("--profile-nodes", action="store_true",
                        help="after the throughput rounds, one mutating run with probes on the replication "
                             "path (CPU and wall per call) and one under cProfile in A and B")
    parser.add_argument("--top", type=int, default=25, help="functions shown per profile")
    parser.add_argument("--keep", action="store_true", help="keep the temporary CATALINA_BASEs")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.warmup, args.users, args.samples = 2, 1, 1, 200, 200
        args.transfer_rounds = 1
        if args.sessions == parser.get_default("sessions"):
            args.sessions = "1000,10000"
    modes = [{"async": 8, "sync": 6}.get(m, None) or int(m) for m in args.modes.split(",") if m]
    sizes = sorted(int(n) for n in args.sessions.split(",") if n)
    if not args.skip_throughput and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian package 'wrk'); or --skip-throughput")

    t_start = time.monotonic()
    args.version = source_version()        # at the start: other people may commit while this runs
    print("measuring pycat %s" % args.version, flush=True)
    per_mode = {}
    extras, extras_root = [], None
    if not args.skip_throughput and not args.no_extras:
        # the same app on a node without a <Cluster> (StandardManager): what the session itself costs;
        # and on a cluster node alone in its group (DeltaManager, tracking, no member to send to):
        # what replication costs before anything is encoded or sent
        extras_root = tempfile.mkdtemp(prefix="pycat-bench-repl-")
        extras = [Node(extras_root, "standalone", None, None, None, args.access_log),
                  Node(extras_root, "nomember", 8, *unique_group(), args.access_log)]
        for node in extras:
            node.start()
        for node in extras:
            node.wait_started()
    try:
        run_modes(args, modes, per_mode, extras)
    finally:
        for node in extras:
            node.stop()
        if extras_root and not args.keep:
            shutil.rmtree(extras_root, ignore_errors=True)
    transfer = bench_transfer(args, sizes) if not args.skip_transfer and sizes else None
    if args.profile:
        profile_transfer(args.profile, args.top)
    report(args, per_mode, transfer, t_start)


def run_modes(args, modes, per_mode, extras):
    for mode in modes if not (args.skip_throughput and args.skip_latency) else ():
        pair = Pair(mode, args.access_log)
        try:
            print("mode %d (%s): starting nodes A and B" % (mode, MODES.get(mode, "?")), flush=True)
            pair.start_both()
            got = {}
            if not args.skip_throughput:
                # the extra nodes do not depend on the mode: measured in the first mode's rounds
                got["tput"] = bench_throughput(pair, args, mode, extras if mode == modes[0] else ())
            if not args.skip_latency:
                got["lat"] = bench_latency(pair, args)
                lat = got["lat"]
                print("  %s latency: p50 %.3f ms, p99 %.3f ms after the response (%d samples)" % (
                    MODES.get(mode, "?"), pct(lat["after"], .5), pct(lat["after"], .99), len(lat["after"])),
                    flush=True)
            per_mode[mode] = got
        finally:
            pair.close(args.keep)


def source_version():
    """The commit of the pycat tree measured, with '+changes' when pycat/ has uncommitted edits."""
    try:
        head = subprocess.run(["git", "-C", HOME, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", HOME, "status", "--porcelain", "--", "pycat"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return HOME
    return "%s %s%s" % (HOME, head or "?", " +changes" if dirty else "")


def report(args, per_mode, transfer, t_start):
    print()
    print("pycat %s, Python %s, %d CPUs, wrk -t1 -c%d, %d sessions in the pool; %d rounds x %d s interleaved "
          "(%d s warm-up each); %s; total %.0f s" % (
              args.version, sys.version.split()[0], os.cpu_count() or 0, args.connections, args.users,
              args.rounds, args.duration, args.warmup, "AccessLogValve on" if args.access_log else "no access log",
              time.monotonic() - t_start))
    if any("tput" in g for g in per_mode.values()):
        print()
        print("1. throughput on A (medians over rounds; CPU = utime+stime per request; no cluster / no member: the "
              "extra nodes, in the first mode's rounds)")
        print("%-6s %-22s %9s %8s %8s %11s %11s  %s" % ("mode", "request", "req/s", "p50 ms", "p99 ms",
                                                       "A CPU us", "B CPU us", "errors"))
        for mode, got in per_mode.items():
            t = got.get("tput")
            if not t:
                continue
            for kind, label in (("none", "no session"), ("inc", "mutating"),
                                ("standalone-none", "no cluster: no session"),
                                ("standalone-inc", "no cluster: mutating"),
                                ("nomember-none", "no member: no session"), ("nomember-inc", "no member: mutating")):
                rs = t["runs"].get(kind)
                if not rs:
                    continue
                bad = sum(r["non2xx"] for r in rs)
                sock = "; ".join(r["socket_errors"] for r in rs if r["socket_errors"])
                print("%-6s %-22s %9.0f %8.2f %8.2f %11.1f %11.1f  %s" % (
                    MODES.get(mode, mode), label, median([r["rps"] for r in rs]), median([r["p50"] for r in rs]),
                    median([r["p99"] for r in rs]), median([r["cpu_a"] for r in rs]),
                    median([r["cpu_b"] for r in rs]), ("non-2xx %d " % bad if bad else "") + sock or "-"))
        print()
        for mode, got in per_mode.items():
            t = got.get("tput")
            if not t:
                continue
            runs = t["runs"]
            r = t["ratios"]
            target = "   target >= 0.6 (Tomcat 10: 0.54)" if mode == 8 else ""
            print("%-6s mutating / no-session req/s on A: median %.2f (min %.2f, max %.2f, %d rounds)%s" % (
                MODES.get(mode, mode), median(r), min(r), max(r), len(r), target))
            cpu = [n["cpu_a"] / i["cpu_a"] for n, i in zip(runs["none"], runs["inc"]) if i["cpu_a"] > 0]
            cpu_ab = [n["cpu_a"] / (i["cpu_a"] + i["cpu_b"]) for n, i in zip(runs["none"], runs["inc"])
                      if i["cpu_a"] > 0]
            print("%-6s   CPU/req no-session / mutating: A alone %.2f, A + B %.2f (what the ratio would be if "
                  "CPU were the only limit)" % (MODES.get(mode, mode), median(cpu), median(cpu_ab)))
            if runs.get("standalone-inc") and runs.get("nomember-inc"):
                def cpu_of(kind):
                    return median([r["cpu_a"] for r in runs[kind]])
                base, solo, lone, full = cpu_of("none"), cpu_of("standalone-inc"), cpu_of("nomember-inc"), cpu_of("inc")
                print("%-6s   CPU of a mutating request on its node, by layer: no-session request %.0f us; "
                      "+ the session "
                      "(no cluster) %+.0f us; + DeltaManager bookkeeping (tracker, delta, valves; no member) %+.0f us; "
                      "+ encoding and sending to B %+.0f us = %.0f us;  B: %.0f us per delta applied" % (
                          MODES.get(mode, mode), base, solo - base, lone - solo, full - lone, full,
                          median([r["cpu_b"] for r in runs["inc"]])))
                for node, label in (("standalone", "no cluster"), ("nomember", "no member")):
                    ratio = [i["rps"] / n["rps"] for n, i in zip(runs[node + "-none"], runs[node + "-inc"])]
                    print("%-6s   %s: mutating / no-session req/s %.2f" % (MODES.get(mode, mode), label, median(ratio)))
            print("%-6s   B applied every delta: %s (sum of counts A %s, B %s; A sent %s deltas)" % (
                MODES.get(mode, mode), "yes" if t["consistent"] else "NO", t["sums"][0]["sum"],
                t["sums"][1]["sum"], t["sent_deltas"]))
    if any("lat" in g for g in per_mode.values()):
        print()
        print("2. replication latency, one request at a time, measured on B (ms)")
        print("%-6s %8s %9s %9s %10s %9s %9s %9s %9s %6s" % (
            "mode", "samples", "p50", "p99", "by resp", "e2e p50", "e2e p99", "rtt p50", "rtt p99", "lost"))
        for mode, got in per_mode.items():
            lat = got.get("lat")
            if not lat:
                continue
            early = sum(1 for x in lat["after"] if x <= 0) / max(1, len(lat["after"]))
            print("%-6s %8d %9.3f %9.3f %9.0f%% %9.3f %9.3f %9.3f %9.3f %6d" % (
                MODES.get(mode, mode), len(lat["after"]), pct(lat["after"], .5), pct(lat["after"], .99),
                early * 100, pct(lat["e2e"], .5), pct(lat["e2e"], .99), pct(lat["rtt"], .5), pct(lat["rtt"], .99),
                lat["lost"]))
        print("p50/p99: A's response read by the client -> B's copy readable (<= 0: B had it first); "
              "by resp: share readable on B by then; e2e: request sent to A -> readable on B; rtt: A's "
              "request round trip.   targets p50 <= 1 ms, p99 <= 5 ms (Tomcat: 1.2 / 7.6-9.5 ms)")
    if transfer is not None:
        base, rss_a, results = transfer
        print()
        print("3. state transfer A -> B (mode 8), medians over %d start(s) of B per size" % args.transfer_rounds)
        print("%8s %9s %8s %5s %11s %10s %9s %9s %9s %9s %9s %9s %9s" % (
            "sessions", "reported", "A sent", "msgs", "spawn->log", "B startup", "B peak", "B HWM", "A before",
            "A peak", "A HWM", "B KB/ses", "A KB/ses"))
        b0, a0 = base["rss_b"], rss_a[0]
        print("%8d %6d ms %5s ms %5s %8.0f ms %7.0f ms %9.1f %9.1f %9.1f %9.1f %9.1f %9s %9s" % (
            0, base["reported_ms"], base["sent_ms"], base["messages"], base["spawn_ms"], base["startup_ms"],
            base["peak_b"], base["hwm_b"], base["rss_a_before"], base["peak_a"], base["hwm_a"], "-", "-"))
        for n, rounds in results:
            def m(key):
                return median([r[key] for r in rounds if r[key] is not None])
            per = median([(r["rss_b"] - b0) * 1024 / n for r in rounds])
            print("%8d %6.0f ms %5.0f ms %5.0f %8.0f ms %7.0f ms %9.1f %9.1f %9.1f %9.1f %9.1f %9.2f %9.2f" % (
                n, m("reported_ms"), m("sent_ms"), m("messages"), m("spawn_ms"), m("startup_ms"), m("peak_b"),
                m("hwm_b"), m("rss_a_before"), m("peak_a"), m("hwm_a"), per, (rss_a[n] - a0) * 1024 / n))
        print("reported: B's DeltaManager log (its GET-ALL -> the last message applied); A sent: A's log of its "
              "answer; "
              "spawn->log: B's spawn -> that log line; B startup: spawn -> 'Server startup' seen; RSS in MB: B peak "
              "(5 ms poll) and VmHWM; A before the transfer, its peak (poll) and VmHWM (reset before each round); "
              "B KB/ses: (B's RSS after startup - %.1f MB with 0 sessions) / N; A KB/ses: A's RSS growth from "
              "/fill / N" % b0)
        if results:
            n, rounds = results[-1]
            print()
            print("4. memory per replicated session on B (%d sessions): %.2f KB (RSS delta / N); A holds the same "
                  "sessions, made locally, in %.2f KB each" % (
                      n, median([(r["rss_b"] - b0) * 1024 / n for r in rounds]), (rss_a[n] - a0) * 1024 / n))
    verdicts = []
    t = per_mode.get(8, {}).get("tput")
    if t:
        verdicts.append(("async mutating / no-session req/s >= 0.6 (Tomcat 10: 0.54)", "%.2f" % median(t["ratios"]),
                         median(t["ratios"]) >= 0.6))
    lat = per_mode.get(8, {}).get("lat")
    if lat:
        p50, p99 = max(0.0, pct(lat["after"], .5)), max(0.0, pct(lat["after"], .99))
        verdicts.append(("async latency, A's response -> readable on B: p50 <= 1 ms (Tomcat 1.2)", "%.3f ms" % p50,
                         p50 <= 1.0))
        verdicts.append(("async latency, A's response -> readable on B: p99 <= 5 ms (Tomcat 7.6-9.5)",
                         "%.3f ms" % p99, p99 <= 5.0))
    if transfer is not None:
        for n, rounds in transfer[2]:
            limit = {10000: 300, 100000: 3000}.get(n)
            if limit:
                got = median([r["reported_ms"] for r in rounds])
                verdicts.append(("state transfer of %dk sessions < %d ms (as B reports it; Tomcat 10: %s)" % (
                    n // 1000, limit, "~610 ms" if n == 10000 else "fails"), "%.0f ms" % got, got < limit))
    if verdicts:
        print()
        print("targets")
    for what, got, ok in verdicts:
        print("  %-86s %10s  %s" % (what, got, "met" if ok else "MISSED"))

if __name__ == "__main__":
    main()
