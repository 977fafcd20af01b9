"""DeltaManager: every session on every node, kept in step by one message per request.

Tomcat's DeltaManager, with its attributes, event numbers and flow (reference section 4), and these
differences, each of which closes a race Tomcat has:

* **One message per request.** The ReplicationValve calls ``request_completed(session)`` for every
  session the request used; the session's DeltaTracker turns the request's changes into one
  DeltaRequest: the creation (for a new session: its first values travel with it, so a replica
  never misses them), sets and removals, values changed in place (a digest of each value read,
  compared at the end), the max inactive interval, principal and auth type. An id change
  (``change_session_id``: login, JvmRouteBinderValve) is sent at once with whatever the request had
  pending, as a CHANGE_ID action of a delta. Expiry and invalidation send SESSION-EXPIRED at once.
* **Send modes.** The cluster's ``channelSendOptions`` decide: with USE_ACK (6, "sync") the request
  ends only after every member acknowledged having applied the delta (SYNCHRONIZED_ACK); without it
  (8, "async") the delta is written to every member's connection on the request's own greenlet, and
  the response is written after that: a crash of this process loses no update a client saw. The
  ASYNCHRONOUS flag never queues a delta (Tomcat's queue dies with the process).
* **Versions.** Each delta carries the session's version (counter, writer); replicas apply each key
  under last-writer-wins (delta_session.py), so concurrent writers on two nodes converge.
* **Order.** A delta that arrives before the session it changes (another connection overtook the
  creation or the rename) waits, bounded in number and time, for the session to appear; then it is
  applied, else dropped with a log line.
* **State transfer.** A starting manager asks one member for all sessions of its app (GET-ALL). The
  answer streams in messages of at most ``sendAllSessionsSize`` sessions and 4 MB, each acknowledged
  before the next, then TRANSFERCOMPLETE announces how many sessions were sent; the joiner checks it
  got them all, and asks the next member otherwise. Messages about sessions arriving meanwhile are
  queued and applied afterwards in order: versions make a late or early one harmless, so none is
  dropped for its timestamp (``stateTimestampDrop`` is accepted and has nothing to do).
  ``start()`` returns after the transfer or ``stateTransferTimeout``; the connectors start after it.

A backup copy (not primary) expires only at twice its interval, silently; sessions are not expired
everywhere when a node stops unless ``expireSessionsOnShutdown``.
"""
import collections
import logging
import secrets
import time

import gevent
import gevent.event

from pycat.attrs import Attr
from pycat.errors import ConfigError, ProtocolError
from pycat.ha.cluster_message import ClusterMessage
from pycat.ha.session import delta as d
from pycat.ha.session import delta_session as ds
from pycat.ha.session.cluster_manager import UNTRUSTED_FIX, ClusterManagerBase
from pycat.ha.session.tracker import DeltaTracker, pickle_digest
from pycat.session import values
from pycat.session.id_generator import parse_session_id
from pycat.tribes import channel as ch
from pycat.tribes.io import codec

log = logging.getLogger(__name__)

KIND = "session"                     # ClusterMessage kind of session messages
CHUNK_BYTES = 4 * 1024 * 1024        # a state-transfer message carries at most about this much
PARK_LIMIT = 1024                    # deltas waiting for their session, at most
PARK_SECONDS = 5.0                   # how long one waits
QUEUE_LIMIT = 100000                 # messages held during a state transfer, at most


def session_message(manager_name, event, session_id="", payload=None, unique_id=""):
    return ClusterMessage(KIND, d.SessionMessage(manager_name, event, session_id, payload, unique_id).to_plain())


class _Transfer:
    """One state-transfer attempt from one member."""

    def __init__(self, member):
        self.member = member
        self.token = secrets.token_hex(8)
        self.done = gevent.event.Event()
        self.announced = None
        self.skipped = 0
        self.received = 0
        self.damaged = 0
        self.no_manager = False
        self.started = time.monotonic()


class DeltaManager(ClusterManagerBase):
    session_class = ds.DeltaSession

    expire_sessions_on_shutdown = Attr(bool, False, "expire every session on every node when this one stops")
    notify_session_listeners_on_replication = Attr(bool, True, "fire session created/destroyed/id-changed "
                                                   "listeners for replicated sessions")
    notify_container_listeners_on_replication = Attr(bool, True, "accepted for Tomcat compatibility (pycat "
                                                     "has no container event for replicated id changes)")
    state_transfer_timeout = Attr(int, 60, "seconds start() waits for the sessions of a running member "
                                           "(-1: forever, 0: do not wait)")
    send_all_sessions = Attr(bool, True, "answer a state transfer without pauses (false: pause "
                                         "sendAllSessionsWaitTime between messages)")
    send_all_sessions_size = Attr(int, 1000, "sessions per state-transfer message, at most (> 0)")
    send_all_sessions_wait_time = Attr(int, 2000, "ms between state-transfer messages when sendAllSessions is false")
    state_timestamp_drop = Attr(bool, True, "accepted for Tomcat compatibility: versions order the "
                                            "messages queued during a state transfer, none is dropped")

    def __init__(self):
        super().__init__()
        self.writer = ""
        self.digest_function = pickle_digest
        # messages held until the state transfer is over (None: not holding)
        self._held = collections.deque()
        self._holding = True
        self._transfer = None
        self._parked = collections.OrderedDict()     # session id -> [(deadline, sender, SessionMessage)]
        self._parked_count = 0
        # statistics (Tomcat's names where it has them)
        self.counter_send_delta = 0
        self.counter_receive_delta = 0
        self.counter_send_expired = 0
        self.counter_receive_expired = 0
        self.counter_send_accessed = 0
        self.counter_receive_accessed = 0
        self.counter_send_change_id = 0
        self.counter_receive_change_id = 0
        self.counter_send_all_sessions = 0
        self.counter_receive_all_sessions = 0
        self.counter_no_state_transferred = 0
        self.counter_dropped = 0
        self.state_transfer_seconds = None

    # -- lifecycle -----------------------------------------------------------------------------
    def _init(self):
        super()._init()
        if self.send_all_sessions_size <= 0:
            raise ConfigError("%s: sendAllSessionsSize must be > 0, not %d"
                              % (self.component_name, self.send_all_sessions_size))

    def _start(self):
        cluster = self.cluster
        if cluster is None:
            log.warning("%s: a DeltaManager outside a <Cluster> keeps its sessions on this node",
                        self.component_name)
            self._holding = False
            return
        local = cluster.get_local_member()
        self.writer = getattr(local, "name", None) or self.jvm_route or secrets.token_hex(4)
        try:
            self.get_all_cluster_sessions()
        finally:
            self._replay()

    def _stop(self):
        if self.expire_sessions_on_shutdown:
            for session in list(self._sessions.values()):
                if session.valid:
                    try:
                        session.expire(True, notify_cluster=True)
                    except Exception:
                        log.exception("%s: expiring %s at stop failed", self.component_name, session.id)
            self._sessions.clear()
        else:
            # the sessions live on in the cluster (not destroyed: no listener hears of it, as for a
            # StandardManager's sessions that live on in its file); a redeploy's new manager takes
            # them over (take_over), otherwise they go with this manager
            for session in list(self._sessions.values()):
                session.tracker = session.observer = None
                if session.valid:
                    session.passivate()
        self._parked.clear()
        self._parked_count = 0
        self._held.clear()
        self._holding = True

    # -- local sessions --------------------------------------------------------------------------
    def begin_tracking(self, session):
        """Start recording a request's changes to ``session`` (DeltaSession.access calls this)."""
        if self.cluster is None:
            return
        request = d.DeltaRequest(self.cluster_manager_name, session.id,
                                 record_all_actions=self.record_all_actions)
        if session.clock == 0 and not session.versions and session.is_primary and session.is_new:
            request.create(session.max_inactive_interval, session.creation_time)
        tracker = DeltaTracker(session, request, class_filter=self.value_class_filter(), loader=self.app_loader,
                               digest_function=self.digest_function)
        session.tracker = tracker
        session.observer = tracker
        session.fields = (session.max_inactive_interval, ds.principal_key(session.principal), session.auth_type)

    def request_completed(self, session):
        """The end of a request that used ``session`` (the ReplicationValve calls this): send its
        changes, or an ACCESSED message when the session moved here or other nodes last heard of it
        long ago. Errors are logged, never raised. Returns the message sent or None."""
        try:
            return self._replicate(session, ending=True)
        except Exception:
            log.exception("%s: replicating session %s failed", self.component_name, session.id)
            return None

    def _replicate(self, session, ending):
        tracker = session.tracker
        if tracker is None or self.cluster is None:
            return None
        if not session.valid:
            session.tracker = session.observer = None
            return None
        in_use = session.access_count > 0 or not ending
        delta = tracker.flush() if in_use else tracker.finish()
        fields = (session.max_inactive_interval, ds.principal_key(session.principal), session.auth_type)
        before = session.fields
        if in_use:
            session.fields = fields
        else:
            session.tracker = session.observer = session.fields = None
        if before is not None and fields != before:
            if delta is None:
                delta = d.DeltaRequest(self.cluster_manager_name, tracker.delta.session_id,
                                       record_all_actions=self.record_all_actions)
            if fields[0] != before[0]:
                delta.set_max_inactive(fields[0])
            if fields[1] != before[1]:
                delta.set_principal(fields[1])
            if fields[2] != before[2]:
                delta.set_auth_type(fields[2])
        now = self.clock()
        if delta is not None:
            delta = self._outgoing(session, delta)
        if delta is None:
            interval = session.max_inactive_interval
            if session.clock and (not session.is_primary or (interval > 0 and now - session.last_replicated > interval)):
                session.is_primary = True
                session.last_replicated = now
                self.counter_send_accessed += 1
                return self._send(d.EVT_SESSION_ACCESSED, session.id)
            session.is_primary = True
            return None
        session.clock += 1
        delta.version = (session.clock, self.writer)
        session.stamp(_keys(delta), delta.version)
        session.is_primary = True
        session.last_replicated = now
        if not self.cluster.has_members():
            return None             # nobody to tell (a joiner gets the versions with the session)
        try:
            payload = delta.to_plain(encode=self._value_encoder(session))
        except values.ValueRefused as exc:
            log.error("%s: session %s: a changed value was refused by sessionAttributeValueClassNameFilter "
                      "and the request's changes were not replicated: %s", self.component_name, session.id, exc)
            return None
        self.counter_send_delta += 1
        return self._send(d.EVT_SESSION_DELTA, delta.session_id, payload)

    def _outgoing(self, session, delta):
        """The delta minus the attributes sessionAttributeNameFilter keeps here; None if empty."""
        if self.name_filter() is None:
            return delta if delta.actions else None
        keep = [a for a in delta.actions if not (a[0] == d.SET or a[0] == d.REMOVE) or self.replicates(a[1])]
        if len(keep) != len(delta.actions):
            delta.actions = keep
        return delta if keep else None

    def _value_encoder(self, session):
        """encode(name, value) for a delta's SET values: the wire form, made once; on an untrusted
        channel a value that would travel as dill bytes stays here, logged with the fix."""
        trusted = self.trusted
        class_filter, loader = self.value_class_filter(), self.app_loader
        encode = ds.attr_values.encode

        def encode_value(name, value):
            wire = encode(value, class_filter, loader)
            if not trusted and type(wire) is tuple and wire[0] == "B":
                log.error("%s: session %s: attribute %r holds a %s, which is not a plain value and cannot "
                          "replicate on this channel; it stays on this node. %s", self.component_name,
                          session.id, name, values.class_name(type(value)), UNTRUSTED_FIX)
                return d.SKIP
            return wire
        return encode_value

    def change_session_id(self, session, new_id=None):
        """Give ``session`` a new id here and, at once, on every other node (with the changes the
        current request has made so far, in the same message)."""
        old_id = session.id
        new_id = super().change_session_id(session, new_id)
        if self.cluster is None or not isinstance(session, ds.DeltaSession):
            return new_id
        if session.tracker is None:
            self.begin_tracking(session)
            session.tracker.delta.session_id = old_id
        session.tracker.delta.change_id(new_id)
        self.counter_send_change_id += 1
        try:
            self._replicate(session, ending=session.access_count == 0)
        except Exception:
            log.exception("%s: replicating the id change of %s failed", self.component_name, old_id)
        return new_id

    rotate_session_id = change_session_id

    def session_expired(self, session, session_id):
        """A session expired or was invalidated here: tell every node (DeltaSession.expire)."""
        if self.cluster is None or not session.clock or not self.state.available:
            return          # never sent anywhere (created and ended in one request), or stopping
        self.counter_send_expired += 1
        self._send(d.EVT_SESSION_EXPIRED, session_id)

    def _send(self, event, session_id="", payload=None, unique_id="", dest=None, options=None):
        if options is None:
            # async never queues a session message (module doc): the write happens now
            options = self.cluster.channel_send_options & ~ch.ASYNCHRONOUS
        message = session_message(self.cluster_manager_name, event, session_id, payload, unique_id)
        return self.cluster.send(message, dest, options)

    # -- received messages -----------------------------------------------------------------------
    def message_received(self, message, sender):
        """A SessionMessage for this manager (ClusterSessionListener routes it here)."""
        event = message.event_type
        if event in (d.EVT_ALL_SESSION_DATA, d.EVT_ALL_SESSION_TRANSFERCOMPLETE, d.EVT_ALL_SESSION_NOCONTEXTMANAGER):
            self._transfer_message(message, sender)
            return
        if event == d.EVT_GET_ALL_SESSIONS and self._holding:
            # not ready to answer (starting, or receiving state itself): a partial answer would pass
            # for the whole state, and holding the request would keep a node that starts at the same
            # time waiting for its timeout; "no manager here" sends it to the next member at once
            log.info("%s: %s asks for sessions before this node has its own state; answering "
                     "NO-CONTEXT-MANAGER", self.component_name, _name(sender))
            self._send(d.EVT_ALL_SESSION_NOCONTEXTMANAGER, "", None, message.unique_id, sender, ch.USE_ACK)
            return
        if self._holding:
            if len(self._held) >= QUEUE_LIMIT:
                self.counter_dropped += 1
                log.error("%s: %d messages already held during the state transfer; %s from %s dropped",
                          self.component_name, QUEUE_LIMIT, message.event_name, _name(sender))
                return
            self._held.append((message, sender))
            return
        self._handle(message, sender)

    def _handle(self, message, sender):
        event = message.event_type
        if event == d.EVT_SESSION_DELTA:
            self._receive_delta(message, sender)
        elif event == d.EVT_SESSION_EXPIRED:
            self.counter_receive_expired += 1
            session = self._sessions.get(message.session_id)
            if session is not None and session.valid:
                session.expire(self.notify_session_listeners_on_replication, notify_cluster=False)
            self._drop_parked(message.session_id)
        elif event == d.EVT_SESSION_ACCESSED:
            self.counter_receive_accessed += 1
            session = self._sessions.get(message.session_id)
            if session is not None and session.valid:
                self._touched_elsewhere(session)
        elif event == d.EVT_GET_ALL_SESSIONS:
            self.spawn(self._send_all_sessions, sender, message.unique_id)
        elif event == d.EVT_CHANGE_SESSION_ID:
            # pycat sends id changes inside deltas; a bare 15 (payload: the new id) is applied too
            session = self._sessions.get(message.session_id)
            if session is not None and type(message.payload) is str and parse_session_id(message.payload):
                self._rename(session, message.payload)
        elif event == d.EVT_SESSION_CREATED:
            if message.session_id and message.session_id not in self._sessions:
                self._new_replica(message.session_id, self.max_inactive_interval, self.clock())
        else:
            log.debug("%s: %s from %s ignored", self.component_name, message.event_name, _name(sender))

    def _touched_elsewhere(self, session):
        now = self.clock()
        session.this_accessed_time = session.last_accessed_time = now
        session.is_primary = False

    def _receive_delta(self, message, sender):
        self.counter_receive_delta += 1
        try:
            delta = message.delta()
        except ProtocolError as exc:
            self.counter_dropped += 1
            log.warning("%s: malformed session delta from %s dropped: %s", self.component_name, _name(sender), exc)
            return
        session = self._sessions.get(delta.session_id)
        if session is None or not session.valid:
            if delta.actions and delta.actions[0][0] == d.CREATE:
                create = delta.actions[0]
                session = self._new_replica(delta.session_id, create[1], create[2])
                if session is None:
                    return
            else:
                self._park(delta.session_id, message, sender)
                return
        self._apply(session, delta, sender)

    def _apply(self, session, delta, sender):
        notify = self.notify_listeners_on_replication
        start = 0
        while True:
            start, refused = session.apply(delta, self._resolve, notify, start)
            for name, exc in refused:
                self.counter_dropped += 1
                log.warning("%s: session %s: attribute %r from %s not applied: %s", self.component_name,
                            session.id, name, _name(sender), exc)
            if start >= len(delta.actions):
                break
            action = delta.actions[start]
            if action[0] == d.CHANGE_ID:
                self._rename(session, action[1])
                start += 1
                continue
            # INVALIDATE / EXPIRE
            session.expire(self.notify_session_listeners_on_replication, notify_cluster=False)
            self._drop_parked(session.id)
            return
        if session.valid:
            self._touched_elsewhere(session)

    def _resolve(self, name, value):
        if not self.replicates(name):
            raise values.ValueRefused(name, "does not match sessionAttributeNameFilter")
        return self.resolve_value(name, value)

    def _resolve_trusted(self, name, value):
        """As _resolve, for a source this node wrote itself (a redeploy's handover)."""
        if type(value) is not ds.attr_values.Blob:
            return value
        return ds.attr_values.resolve(value, True, self.value_class_filter(), self.app_loader)

    def _replica_from_record(self, parsed, resolve):
        """A new backup copy built straight from a parsed record (the state transfer's common case:
        the joiner has none of the sessions yet). As a deserialised session in Tomcat: session
        listeners hear it created (notifySessionListenersOnReplication), values hear they were
        activated, attribute listeners hear nothing. (session or None, refused values)."""
        sid, ctime, lat, interval, principal, auth_type, clock, attrs, versions = parsed
        if parse_session_id(sid) is None:
            log.warning("%s: replicated session id %r is malformed; dropped", self.component_name, sid)
            return None, ()
        limit = self.max_active_sessions
        if limit is not None and limit >= 0 and len(self._sessions) >= limit:
            self.rejected_sessions += 1
            log.warning("%s: maxActiveSessions (%d) reached; replicated session %s refused",
                        self.component_name, limit, sid)
            return None, ()
        refused = []
        attributes = {}
        for name, value in attrs:
            try:
                attributes[name] = resolve(name, value) if type(value) is ds.attr_values.Blob \
                    or self.session_attribute_name_filter else value
            except values.ValueRefused as exc:
                refused.append((name, exc))
        session = self.create_empty_session()
        session.fill(sid, ctime, lat, self.clock(), interval, ds.principal_object(principal), auth_type, clock,
                     versions, attributes)
        self.add(session)
        self.session_counter += 1
        if self.notify_session_listeners_on_replication:
            session.tell_new()
        session.activate()
        if self._parked:
            self._unpark(sid, session)
        return session, refused

    def _new_replica(self, session_id, max_inactive, creation_time):
        if parse_session_id(session_id) is None:
            log.warning("%s: replicated session id %r is malformed; dropped", self.component_name, session_id)
            return None
        limit = self.max_active_sessions
        if limit is not None and limit >= 0 and len(self._sessions) >= limit:
            self.rejected_sessions += 1
            log.warning("%s: maxActiveSessions (%d) reached; replicated session %s refused",
                        self.component_name, limit, session_id)
            return None
        session = self.create_empty_session()
        session.valid = True
        session.is_new = False
        session.is_primary = False
        session.max_inactive_interval = max_inactive
        session.creation_time = creation_time
        session.this_accessed_time = session.last_accessed_time = self.clock()
        session.set_id(session_id, notify=self.notify_session_listeners_on_replication)
        self.session_counter += 1
        self._unpark(session_id, session)
        return session

    def _rename(self, session, new_id):
        if new_id == session.id or parse_session_id(new_id) is None:
            return
        self.counter_receive_change_id += 1
        other = self._sessions.get(new_id)
        if other is not None and other is not session:
            log.warning("%s: id change %s -> %s replaces a session already there", self.component_name,
                        session.id, new_id)
            other.expire(False, notify_cluster=False)
        old_id = session.id
        session.set_id(new_id, notify=False)
        session.is_primary = False
        session.tell_changed_session_id(new_id, old_id, notify=self.notify_session_listeners_on_replication)
        self._unpark(new_id, session)

    # -- deltas waiting for their session ------------------------------------------------------------
    def _park(self, session_id, message, sender):
        now = time.monotonic()
        self._expire_parked(now)
        if self._parked_count >= PARK_LIMIT:
            self.counter_dropped += 1
            log.warning("%s: delta for unknown session %s from %s dropped (%d already waiting)",
                        self.component_name, session_id, _name(sender), self._parked_count)
            return
        self._parked.setdefault(session_id, []).append((now + PARK_SECONDS, sender, message))
        self._parked_count += 1

    def _expire_parked(self, now):
        while self._parked:
            session_id, waiting = next(iter(self._parked.items()))
            if waiting[0][0] > now:
                break
            del self._parked[session_id]
            self._parked_count -= len(waiting)
            self.counter_dropped += len(waiting)
            log.warning("%s: %d delta(s) for unknown session %s from %s dropped", self.component_name,
                        len(waiting), session_id, _name(waiting[0][1]))

    def _drop_parked(self, session_id):
        waiting = self._parked.pop(session_id, None)
        if waiting:
            self._parked_count -= len(waiting)

    def _unpark(self, session_id, session):
        waiting = self._parked.pop(session_id, None)
        if not waiting:
            return
        self._parked_count -= len(waiting)
        for _deadline, sender, message in waiting:
            if not session.valid or session.id != session_id:
                break
            try:
                self._apply(session, message.delta(), sender)
            except ProtocolError:
                pass        # was parsed once already

    def background_process(self):
        super().background_process()
        self._expire_parked(time.monotonic())

    # -- state transfer: the joiner ------------------------------------------------------------------
    def get_all_cluster_sessions(self):
        """Ask running members for every session of this app (module doc); returns how many arrived."""
        cluster = self.cluster
        members = cluster.get_members() if cluster is not None else []
        if not members:
            log.info("%s: no cluster members; no session state to transfer", self.component_name)
            return 0
        timeout = self.state_transfer_timeout
        if timeout == 0:
            log.info("%s: stateTransferTimeout is 0; not waiting for session state", self.component_name)
        received = 0
        started = time.monotonic()
        # the longest-running member first: the one most likely to hold every session
        members = sorted(members, key=lambda m: getattr(m, "alive_time", 0) or 0, reverse=True)
        for member in members:
            transfer = self._transfer = _Transfer(member)
            log.info("%s: asking %s for the sessions of %s", self.component_name, _name(member),
                     self.cluster_manager_name)
            sent = self._send(d.EVT_GET_ALL_SESSIONS, "GET-ALL", None, transfer.token, member, ch.USE_ACK)
            if sent is None:
                continue
            if timeout == 0:
                return 0
            if not transfer.done.wait(None if timeout < 0 else timeout):
                self.counter_no_state_transferred += 1
                log.error("%s: no complete session state from %s within %d s (stateTransferTimeout): %d "
                          "sessions received%s; starting with them", self.component_name, _name(member), timeout,
                          transfer.received, "" if transfer.announced is None else
                          " of %d announced" % transfer.announced)
                received += transfer.received
                break
            received += transfer.received
            if transfer.no_manager:
                log.info("%s: %s has no application %s; asking the next member", self.component_name,
                         _name(member), self.cluster_manager_name)
                continue
            took = time.monotonic() - started
            if transfer.received + transfer.damaged == transfer.announced:
                self.state_transfer_seconds = took
                log.info("%s: received %d sessions from %s in %.0f ms (state transfer complete%s)",
                         self.component_name, transfer.received, _name(member), took * 1000,
                         ", %d damaged records skipped" % transfer.damaged if transfer.damaged else "")
                if transfer.skipped:
                    log.warning("%s: %s could not send %d sessions (too large or not serialisable)",
                                self.component_name, _name(member), transfer.skipped)
                break
            log.error("%s: %s announced %d sessions but %d arrived; asking the next member",
                      self.component_name, _name(member), transfer.announced, transfer.received)
        self._transfer = None
        return received

    def _transfer_message(self, message, sender):
        transfer = self._transfer
        event = message.event_type
        if transfer is None or message.unique_id != transfer.token:
            log.debug("%s: %s from %s is not for a transfer in progress; ignored", self.component_name,
                      message.event_name, _name(sender))
            return
        if event == d.EVT_ALL_SESSION_NOCONTEXTMANAGER:
            transfer.no_manager = True
            transfer.done.set()
        elif event == d.EVT_ALL_SESSION_TRANSFERCOMPLETE:
            payload = message.payload
            if type(payload) is not dict or type(payload.get("sessions")) is not int:
                log.warning("%s: malformed transfer-complete from %s", self.component_name, _name(sender))
                transfer.announced = -1
            else:
                transfer.announced = payload["sessions"]
                skipped = payload.get("skipped")
                transfer.skipped = skipped if type(skipped) is int else 0
            self._check_complete(transfer)
        else:
            self.counter_receive_all_sessions += 1
            ok, bad = self.load_records(message.payload, sender)
            transfer.received += ok
            transfer.damaged += bad
            self._check_complete(transfer)

    @staticmethod
    def _check_complete(transfer):
        # the data messages are acknowledged on arrival (the sender encodes the next one while
        # this node applies the last) and may travel on other connections than the announcement:
        # done once the announcement came AND every announced session was applied
        announced = transfer.announced
        if announced is not None and (announced < 0 or transfer.received + transfer.damaged >= announced):
            transfer.done.set()

    def take_over(self, old):
        """Redeploy handover: the sessions of ``old`` (a stopped DeltaManager of the replaced
        Context, which keeps them, see _stop) become this manager's, with their versions, through
        the state-transfer records (values of the app's classes come back as the new code's)."""
        if not isinstance(old, DeltaManager):
            return super().take_over(old)
        encode = old._record_encoder(local=True)
        blobs = []
        primary = set()
        with values.bound(old.app_loader):
            for session in list(old._sessions.values()):
                if not session.valid:
                    continue
                if session.is_primary:
                    primary.add(session.id)
                try:
                    blobs.append(codec.dumps(ds.to_record(session, encode)))
                except Exception as exc:
                    log.error("%s: session %s of %s could not be taken over: %s", self.component_name,
                              session.id, old.component_name, exc)
        old._sessions.clear()
        taken, _damaged = self.load_records(blobs, None, trusted=True)
        for sid in primary:
            session = self._sessions.get(sid)
            if session is not None:
                session.is_primary = True
                session.activate()
        if taken:
            log.info("%s: took over %d sessions from %s", self.component_name, taken, old.component_name)
        return taken

    def load_records(self, payload, sender=None, trusted=None):
        """Merge a state-transfer message's session records (codec bytes each); (loaded, damaged).
        ``trusted``: whether dill values may be loaded (default: whether the channel is trusted)."""
        if type(payload) is not list:
            log.warning("%s: malformed session data from %s", self.component_name, _name(sender))
            return 0, 0
        loaded = damaged = 0
        notify = self.notify_listeners_on_replication
        resolve = self._resolve_trusted if trusted else self._resolve
        with values.bound(self.app_loader):
            for blob in payload:
                try:
                    if type(blob) is not bytes:
                        raise ProtocolError("session record is not bytes")
                    parsed = ds.parse_record(codec.loads(blob))
                except (ProtocolError, ValueError) as exc:
                    damaged += 1
                    log.warning("%s: a session record from %s is damaged and was skipped: %s",
                                self.component_name, _name(sender), exc)
                    continue
                sid = parsed[0]
                session = self._sessions.get(sid)
                if session is None or not session.valid:
                    session, refused = self._replica_from_record(parsed, resolve)
                    if session is None:
                        damaged += 1
                        continue
                else:
                    refused = ds.merge_record(session, parsed, resolve, notify)
                    session.is_primary = False
                for name, exc in refused:
                    log.warning("%s: session %s: attribute %r from %s not loaded: %s", self.component_name, sid,
                                name, _name(sender), exc)
                loaded += 1
        return loaded, damaged

    def _replay(self):
        held = self._held
        self._holding = False
        if held:
            log.info("%s: applying %d session messages that arrived during the state transfer",
                     self.component_name, len(held))
        while held:
            message, sender = held.popleft()
            try:
                self._handle(message, sender)
            except Exception:
                log.exception("%s: a held %s from %s failed", self.component_name, message.event_name,
                              _name(sender))

    # -- state transfer: the sender -------------------------------------------------------------------
    def _send_all_sessions(self, member, token):
        """Answer a GET-ALL: every valid session, in acknowledged messages of bounded size."""
        started = time.monotonic()
        sessions = [s for s in list(self._sessions.values()) if s.valid]
        size = max(1, self.send_all_sessions_size)
        encode = self._record_encoder()
        # acknowledged on arrival: the joiner applies one message while this node encodes the next;
        # TCP and the one-ack-at-a-time sender bound what is in flight
        acked = ch.USE_ACK
        sent = skipped = chunks = 0
        chunk, chunk_bytes = [], 0
        self.counter_send_all_sessions += 1

        def flush():
            nonlocal chunks, chunk, chunk_bytes
            if not chunk:
                return True
            if chunks and not self.send_all_sessions:
                gevent.sleep(self.send_all_sessions_wait_time / 1000.0)
            if self._send(d.EVT_ALL_SESSION_DATA, "", chunk, token, member, acked) is None:
                return False
            chunks += 1
            chunk, chunk_bytes = [], 0
            return True

        with values.bound(self.app_loader):
            for session in sessions:
                if not session.valid:
                    continue
                try:
                    blob = codec.dumps(ds.to_record(session, encode))
                except Exception as exc:
                    skipped += 1
                    log.warning("%s: session %s cannot be sent to %s: %s", self.component_name, session.id,
                                _name(member), exc)
                    continue
                if len(blob) > CHUNK_BYTES * 3:
                    skipped += 1
                    log.error("%s: session %s is %d bytes, too large for a state-transfer message; not sent",
                              self.component_name, session.id, len(blob))
                    continue
                if chunk and (len(chunk) >= size or chunk_bytes + len(blob) > CHUNK_BYTES):
                    if not flush():
                        log.error("%s: state transfer to %s failed after %d sessions", self.component_name,
                                  _name(member), sent)
                        return
                chunk.append(blob)
                chunk_bytes += len(blob)
                sent += 1
            if not flush():
                log.error("%s: state transfer to %s failed after %d sessions", self.component_name,
                          _name(member), sent - len(chunk))
                return
        self._send(d.EVT_ALL_SESSION_TRANSFERCOMPLETE, "", {"sessions": sent, "skipped": skipped, "chunks": chunks},
                   token, member, ch.USE_ACK)
        log.info("%s: sent %d sessions to %s in %d messages, %.0f ms", self.component_name, sent, _name(member),
                 chunks, (time.monotonic() - started) * 1000)

    def _record_encoder(self, local=False):
        trusted = local or self.trusted
        class_filter, loader = self.value_class_filter(), self.app_loader

        named = self.name_filter() is not None
        to_wire = ds.attr_values.encode

        def encode(name, value):
            if named and not self.replicates(name):
                return ds.SKIP
            try:
                wire = to_wire(value, class_filter, loader)
            except Exception as exc:
                self.filter_failure("attribute %r (%s) not sent: %s", name, values.class_name(type(value)), exc)
                return ds.SKIP
            if not trusted and type(wire) is tuple and wire[0] == "B":
                return ds.SKIP          # plain values only on a channel that does not authenticate
            return wire
        return encode


def _keys(delta):
    keys = []
    for action in delta.actions:
        code = action[0]
        if code == d.SET or code == d.REMOVE:
            keys.append(action[1])
        elif code in (d.MAX_INACTIVE, d.PRINCIPAL, d.AUTH_TYPE):
            keys.append(code)
    return keys


def _name(member):
    return getattr(member, "name", None) or str(member)
