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
* **State transfer** (state_transfer.py). A starting manager asks one member for all sessions of
  its app, streamed in bounded messages and checked against the count announced; the copies stay
  encoded until something needs them (session_table.py: ``_sessions`` is a SessionTable).
  Messages about sessions arriving meanwhile are held and applied afterwards in order: versions
  make a late or early one harmless, so none is dropped for its timestamp (``stateTimestampDrop``
  is accepted and has nothing to do). ``start()`` returns after the transfer or
  ``stateTransferTimeout``; the connectors start after it.

A backup copy (not primary) expires only at twice its interval, silently; sessions are not expired
everywhere when a node stops unless ``expireSessionsOnShutdown``.
"""
import collections
import logging
import secrets
import time

from pycat.attrs import Attr
from pycat.errors import ConfigError, ProtocolError
from pycat.ha.cluster_message import ClusterMessage
from pycat.ha.session import delta as d
from pycat.ha.session import delta_session as ds
from pycat.ha.session.cluster_manager import ClusterManagerBase, member_name
from pycat.ha.session.session_table import SessionTable
from pycat.ha.session.state_transfer import StateTransfer
from pycat.session.id_generator import parse_session_id
from pycat.tribes import channel as ch

log = logging.getLogger(__name__)

KIND = "session"                     # ClusterMessage kind of session messages
PARK_LIMIT = 1024                    # deltas waiting for their session, at most
PARK_SECONDS = 5.0                   # how long one waits
QUEUE_LIMIT = 100000                 # messages held during a state transfer, at most


def session_message(manager_name, event, session_id="", payload=None, unique_id=""):
    """The ClusterMessage carrying a SessionMessage; its body is already encoded (the same bytes as
    the SessionMessage's plain form: SessionMessage.encoded)."""
    if event not in d.EVENT_NAMES:
        raise ValueError("unknown session event type %r" % (event,))
    timestamp = int(time.time() * 1000)
    body = d.SessionMessage.encoded(manager_name, event, session_id, timestamp, unique_id, payload)
    return ClusterMessage(KIND, body, "", timestamp)



class DeltaManager(StateTransfer, ClusterManagerBase):
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
        # replicas may stay encoded until something needs them (session_table.py)
        self._sessions = SessionTable(self._materialise)
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
            # them over (take_over), otherwise they go with this manager. Copies never built were
            # never activated: they stay as they are.
            for session in self._sessions.loaded():
                session.tracker = session.observer = None
                if session.valid:
                    session.passivate()
        self._parked.clear()
        self._parked_count = 0
        self._held.clear()
        self._holding = True

    # -- local sessions --------------------------------------------------------------------------
    def _replicate(self, session, ending):
        if session.tracker is None or self.cluster is None:
            return None
        if not session.valid:
            session.tracker = session.observer = None
            return None
        delta = self._request_delta(session, ending)
        now = self.clock()
        if delta is None:
            interval = session.max_inactive_interval
            if session.clock and (not session.is_primary or (interval > 0 and now - session.last_replicated > interval)):
                session.is_primary = True
                session.last_replicated = now
                self.counter_send_accessed += 1
                return self._send(d.EVT_SESSION_ACCESSED, session.id)
            session.is_primary = True
            return None
        self._stamp(session, delta)
        session.is_primary = True
        session.last_replicated = now
        if not self.cluster.has_members():
            return None             # nobody to tell (a joiner gets the versions with the session)
        # (_request_delta left out the names sessionAttributeNameFilter keeps home)
        payload = delta.to_encoded(encoder=lambda: self.value_encoder(session))
        self.counter_send_delta += 1
        return self._send(d.EVT_SESSION_DELTA, delta.session_id, payload)

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
                     "NO-CONTEXT-MANAGER", self.component_name, member_name(sender))
            self._send(d.EVT_ALL_SESSION_NOCONTEXTMANAGER, "", None, message.unique_id, sender, ch.USE_ACK)
            return
        if self._holding:
            if len(self._held) >= QUEUE_LIMIT:
                self.counter_dropped += 1
                log.error("%s: %d messages already held during the state transfer; %s from %s dropped",
                          self.component_name, QUEUE_LIMIT, message.event_name, member_name(sender))
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
            log.debug("%s: %s from %s ignored", self.component_name, message.event_name, member_name(sender))

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
            log.warning("%s: malformed session delta from %s dropped: %s", self.component_name, member_name(sender), exc)
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
                            session.id, name, member_name(sender), exc)
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

    def _new_replica(self, session_id, max_inactive, creation_time):
        if not self._admits(session_id):
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
                        self.component_name, session_id, member_name(sender), self._parked_count)
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
                        len(waiting), session_id, member_name(waiting[0][1]))

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

    def process_expires(self):
        """ManagerBase's expiry without building the copies still encoded: one of those is built
        (and then expires as any backup copy, listeners told) only once it is due."""
        started = time.monotonic()
        table = self._sessions
        now = self.clock()
        expired = 0
        for pending in table.pending():
            if pending.due(now):
                session = table.get(pending.id)
                if session is not None and not session.is_valid:
                    expired += 1
        for session in table.loaded():
            if not session.is_valid:
                expired += 1
        self.process_expires_time += time.monotonic() - started
        if expired:
            log.debug("%s: expired %d sessions, %d active", self.component_name, expired, len(table))
        return expired






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
                              member_name(sender))
