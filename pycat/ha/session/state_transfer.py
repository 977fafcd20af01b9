"""State transfer: a starting node gets every session of an app from a running member.

A part of DeltaManager (this mixin needs its table, ``_send``, ``_admits``, ``_resolve``,
``value_writer``, ``_unpark``), kept apart because it is a protocol of its own:

* The joiner (``get_all_cluster_sessions``, from ``start()``): asks the longest-running member
  (GET-ALL, with a token); each SESSION-ALL-DATA message carrying that token is taken as it comes
  (``load_records``); TRANSFERCOMPLETE announces how many sessions were sent. Done once the
  announcement came and every announced session was taken (data messages may travel on other
  connections than the announcement); a shortfall asks the next member; NO-CONTEXT-MANAGER (the
  member has no such app, or no state yet) asks the next one at once; ``stateTransferTimeout``
  bounds the wait.
* A session the joiner does not have yet is kept as its record (a PendingSession in the
  SessionTable, session_table.py) and built the first time something asks for it
  (``_materialise``); one it has already is merged under last-writer-wins at once.
* The sender (``_send_all_sessions``, in a greenlet the manager owns): every valid session as a
  record encoded on its own in one pass (delta_session.record_bytes), or the record a pending copy
  came as, so a message holds at most ``sendAllSessionsSize`` sessions and CHUNK_BYTES. Data
  messages go without an acknowledgement: TCP's flow control bounds what is in flight, and the
  sender encodes the next message while the joiner takes the last; the announcement is
  acknowledged.
* A redeploy's handover (``take_over``) goes through the same records, inside the node.

Sessions are built from their records (``_build_replica``) with Tomcat's deserialisation
semantics: values hear they were activated, attribute listeners hear nothing, session listeners
hear of a new copy (notifySessionListenersOnReplication) when it arrives, which is why a table with
such listeners builds copies at once.
"""
import logging
import secrets
import time

import gevent
import gevent.event

from pycat.errors import ProtocolError
from pycat.ha.session import delta as d
from pycat.ha.session import delta_session as ds
from pycat.ha.session.cluster_manager import member_name
from pycat.ha.session.session_table import PendingSession, SessionTable
from pycat.session import values
from pycat.session.id_generator import parse_session_id
from pycat.tribes import channel as ch
from pycat.tribes.io import codec

log = logging.getLogger(__name__)

#: a state-transfer message carries at most about this much: a size the socket buffers hold, so the
#: sender goes on encoding while the joiner reads, and the first message leaves early
CHUNK_BYTES = 256 * 1024
MAX_RECORD = 12 * 1024 * 1024        # one session's record, at most (alone in a message: under the codec's 16 MB)


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


class StateTransfer:
    """The state-transfer half of DeltaManager (module doc)."""

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
            log.info("%s: asking %s for the sessions of %s", self.component_name, member_name(member),
                     self.cluster_manager_name)
            sent = self._send(d.EVT_GET_ALL_SESSIONS, "GET-ALL", None, transfer.token, member, ch.USE_ACK)
            if sent is None:
                continue
            if timeout == 0:
                return 0
            if not transfer.done.wait(None if timeout < 0 else timeout):
                self.counter_no_state_transferred += 1
                log.error("%s: no complete session state from %s within %d s (stateTransferTimeout): %d "
                          "sessions received%s; starting with them", self.component_name, member_name(member), timeout,
                          transfer.received, "" if transfer.announced is None else
                          " of %d announced" % transfer.announced)
                received += transfer.received
                break
            received += transfer.received
            if transfer.no_manager:
                log.info("%s: %s has no application %s; asking the next member", self.component_name,
                         member_name(member), self.cluster_manager_name)
                continue
            took = time.monotonic() - started
            if transfer.received + transfer.damaged == transfer.announced:
                self.state_transfer_seconds = took
                log.info("%s: received %d sessions from %s in %.0f ms (state transfer complete%s)",
                         self.component_name, transfer.received, member_name(member), took * 1000,
                         ", %d damaged records skipped" % transfer.damaged if transfer.damaged else "")
                if transfer.skipped:
                    log.warning("%s: %s could not send %d sessions (too large or not serialisable)",
                                self.component_name, member_name(member), transfer.skipped)
                break
            log.error("%s: %s announced %d sessions but %d arrived; asking the next member",
                      self.component_name, member_name(member), transfer.announced, transfer.received)
        self._transfer = None
        return received

    def _transfer_message(self, message, sender):
        transfer = self._transfer
        event = message.event_type
        if transfer is None or message.unique_id != transfer.token:
            log.debug("%s: %s from %s is not for a transfer in progress; ignored", self.component_name,
                      message.event_name, member_name(sender))
            return
        if event == d.EVT_ALL_SESSION_NOCONTEXTMANAGER:
            transfer.no_manager = True
            transfer.done.set()
        elif event == d.EVT_ALL_SESSION_TRANSFERCOMPLETE:
            payload = message.payload
            if type(payload) is not dict or type(payload.get("sessions")) is not int:
                log.warning("%s: malformed transfer-complete from %s", self.component_name, member_name(sender))
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
        the state-transfer records (values of the app's classes come back as the new code's).
        Copies ``old`` had not built yet move as they are, still encoded."""
        if not isinstance(old, StateTransfer):
            return super().take_over(old)
        write = old.value_writer(local=True)
        blobs = []
        primary = set()
        moved = 0
        table = old._sessions
        entries = table.entries() if isinstance(table, SessionTable) else list(table.values())
        with values.bound(old.app_loader):
            for session in entries:
                if type(session) is PendingSession:
                    if session.id not in self._sessions and self._admits(session.id):
                        self._add_pending(session)
                        moved += 1
                    continue
                if not session.valid:
                    continue
                if session.is_primary:
                    primary.add(session.id)
                try:
                    blobs.append(ds.record_bytes(session, write))
                except Exception as exc:
                    log.error("%s: session %s of %s could not be taken over: %s", self.component_name,
                              session.id, old.component_name, exc)
        dict.clear(table)
        taken, _damaged = self.load_records(blobs, None, trusted=True, lazy=False)
        taken += moved
        for sid in primary:
            session = self._sessions.get(sid)
            if session is not None:
                session.is_primary = True
                session.activate()
        if taken:
            log.info("%s: took over %d sessions from %s", self.component_name, taken, old.component_name)
        return taken

    def load_records(self, payload, sender=None, trusted=None, lazy=True):
        """Merge a state-transfer message's session records (codec bytes each); (loaded, damaged).
        ``trusted``: whether dill values may be loaded (default: whether the channel is trusted).
        ``lazy``: a session this node does not have yet is kept as its record (a PendingSession,
        built when something asks for it: session_table.py), unless session listeners want to
        hear it created now or deltas are waiting for it."""
        if type(payload) is not list:
            log.warning("%s: malformed session data from %s", self.component_name, member_name(sender))
            return 0, 0
        loaded = damaged = 0
        table = self._sessions
        lazy = lazy and isinstance(table, SessionTable) and not (
            self.notify_session_listeners_on_replication and self.listeners.has("session_created"))
        now = self.clock()
        eager = []
        # the joiner's loop over every session it is sent: _admits and _add_pending inline for
        # the common case (no maxActiveSessions; an id parse_session_id takes)
        limit = self.max_active_sessions
        unlimited = limit is None or limit < 0
        peek, parked, local = ds.peek_record, self._parked, bool(trusted)
        added = 0
        for blob in payload:
            try:
                sid, interval = peek(blob)
            except (ProtocolError, ValueError) as exc:
                damaged += 1
                log.warning("%s: a session record from %s is damaged and was skipped: %s",
                            self.component_name, member_name(sender), exc)
                continue
            if lazy and sid not in table and sid not in parked:
                if not (unlimited and parse_session_id(sid) is not None) and not self._admits(sid):
                    damaged += 1
                    continue
                dict.__setitem__(table, sid, PendingSession(sid, blob, interval, now, local, sender))
                added += 1
            else:
                eager.append(blob)
        if added:
            loaded += added
            self.session_counter += added
            if len(table) > self.max_active:
                self.max_active = len(table)
        if not eager:
            return loaded, damaged
        notify = self.notify_listeners_on_replication
        resolve = self._resolve_trusted if trusted else self._resolve
        with values.bound(self.app_loader):
            for blob in eager:
                try:
                    parsed = ds.parse_record(codec.loads(blob))
                except (ProtocolError, ValueError) as exc:
                    damaged += 1
                    log.warning("%s: a session record from %s is damaged and was skipped: %s",
                                self.component_name, member_name(sender), exc)
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
                                name, member_name(sender), exc)
                loaded += 1
        return loaded, damaged

    def _add_pending(self, pending):
        table = self._sessions
        dict.__setitem__(table, pending.id, pending)
        if len(table) > self.max_active:
            self.max_active = len(table)
        self.session_counter += 1

    def _materialise(self, pending):
        """Build the DeltaSession of a PendingSession that is in the table (SessionTable calls
        this): the record decoded and checked whole, its values resolved with the trust of its
        source (the channel's; a handover's own records: trusted), values told they were
        activated; no listener hears of it (nobody wanted to, see load_records). The session, or
        None when the record is damaged (the entry is dropped, with a log line)."""
        table = self._sessions
        if dict.get(table, pending.id) is not pending:
            return table.get(pending.id)
        resolve = self._resolve_trusted if pending.local else self._resolve
        with values.bound(self.app_loader):
            try:
                parsed = ds.parse_record(codec.loads(pending.record))
                if parsed[0] != pending.id:
                    raise ProtocolError("record of session %s under the id %s" % (parsed[0], pending.id))
            except (ProtocolError, ValueError) as exc:
                dict.pop(table, pending.id, None)
                self.counter_dropped += 1
                log.warning("%s: the session record of %s from %s is damaged; session dropped: %s",
                            self.component_name, pending.id, member_name(pending.sender), exc)
                return None
            session, refused = self._build_replica(parsed, resolve, pending.arrived)
            dict.__setitem__(table, session.id, session)
            session.activate()
        for name, exc in refused:
            log.warning("%s: session %s: attribute %r from %s not loaded: %s", self.component_name, session.id,
                        name, member_name(pending.sender), exc)
        return session

    def _send_all_sessions(self, member, token):
        """Answer a GET-ALL: every valid session, in messages of bounded size (module doc). A copy
        this node has not built (PendingSession) goes as the record it came as, unless
        sessionAttributeNameFilter is set or it is a handover's own record (then it is built and
        encoded under this node's rules)."""
        started = time.monotonic()
        table = self._sessions
        sessions = table.entries() if isinstance(table, SessionTable) else list(table.values())
        size = max(1, self.send_all_sessions_size)
        write = self.value_writer()
        forward = self.name_filter() is None
        now = self.clock()
        # not acknowledged one by one: TCP's flow control bounds what is in flight while this node
        # encodes the next message and the joiner takes the last (the count at the end is acknowledged)
        acked = 0
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
                if type(session) is PendingSession:
                    if dict.get(table, session.id) is not session or session.due(now):
                        continue
                    if forward and not session.local:
                        blob = session.record
                        session = None
                    else:
                        session = table.get(session.id)
                        if session is None:
                            continue
                if session is not None:
                    if not session.valid:
                        continue
                    try:
                        blob = ds.record_bytes(session, write)
                    except Exception as exc:
                        skipped += 1
                        log.warning("%s: session %s cannot be sent to %s: %s", self.component_name, session.id,
                                    member_name(member), exc)
                        continue
                    if len(blob) > MAX_RECORD:
                        skipped += 1
                        log.error("%s: session %s is %d bytes, too large for a state-transfer message; not sent",
                                  self.component_name, session.id, len(blob))
                        continue
                if chunk and (len(chunk) >= size or chunk_bytes + len(blob) > CHUNK_BYTES):
                    if not flush():
                        log.error("%s: state transfer to %s failed after %d sessions", self.component_name,
                                  member_name(member), sent)
                        return
                chunk.append(blob)
                chunk_bytes += len(blob)
                sent += 1
            if not flush():
                log.error("%s: state transfer to %s failed after %d sessions", self.component_name,
                          member_name(member), sent - len(chunk))
                return
        self._send(d.EVT_ALL_SESSION_TRANSFERCOMPLETE, "", {"sessions": sent, "skipped": skipped, "chunks": chunks},
                   token, member, ch.USE_ACK)
        log.info("%s: sent %d sessions to %s in %d messages, %.0f ms", self.component_name, sent, member_name(member),
                 chunks, (time.monotonic() - started) * 1000)

    def _build_replica(self, parsed, resolve, arrived):
        """(a DeltaSession filled from a parsed record, not in the table yet; refused values)."""
        sid, ctime, lat, interval, principal, auth_type, clock, attrs, versions = parsed
        refused = []
        attributes = {}
        check_all = bool(self.session_attribute_name_filter)
        for name, value in attrs:
            try:
                attributes[name] = resolve(name, value) if check_all or type(value) is ds.attr_values.Blob \
                    else value
            except values.ValueRefused as exc:
                refused.append((name, exc))
        session = self.create_empty_session()
        session.fill(sid, ctime, lat, arrived, interval, ds.principal_object(principal), auth_type, clock,
                     versions, attributes)
        return session, refused

    def _replica_from_record(self, parsed, resolve):
        """A new backup copy built straight from a parsed record. As a deserialised session in
        Tomcat: session listeners hear it created (notifySessionListenersOnReplication), values
        hear they were activated, attribute listeners hear nothing. (session or None, refused values)."""
        sid = parsed[0]
        if not self._admits(sid):
            return None, ()
        session, refused = self._build_replica(parsed, resolve, self.clock())
        self.add(session)
        self.session_counter += 1
        if self.notify_session_listeners_on_replication:
            session.tell_new()
        session.activate()
        if self._parked:
            self._unpark(sid, session)
        return session, refused
