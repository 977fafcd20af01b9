"""State transfer: a starting node gets every session of an app from a running member.

A part of DeltaManager (this mixin needs its table, ``_send``, ``_admits``, ``_resolve``,
``value_encoder``, ``_unpark``), kept apart because it is a protocol of its own:

* The joiner (``get_all_cluster_sessions``, from ``start()``): asks the longest-running member
  (GET-ALL, with a token); each SESSION-ALL-DATA message carrying that token is merged as it comes
  (``load_records``); TRANSFERCOMPLETE announces how many sessions were sent. Done once the
  announcement came and every announced session was applied (data messages are acknowledged on
  arrival and may travel on other connections than the announcement); a shortfall asks the next
  member; NO-CONTEXT-MANAGER (the member has no such app, or no state yet) asks the next one at
  once; ``stateTransferTimeout`` bounds the wait.
* The sender (``_send_all_sessions``, in a greenlet the manager owns): every valid session as a
  record (delta_session.to_record) encoded on its own, so a message holds at most
  ``sendAllSessionsSize`` sessions and CHUNK_BYTES; each message acknowledged on arrival, so the
  sender encodes the next while the joiner applies the last, and at most one is in flight.
* A redeploy's handover (``take_over``) goes through the same records, inside the node.

New copies are built straight from their records (``_replica_from_record``) with Tomcat's
deserialisation semantics; a session the joiner already has is merged under last-writer-wins.
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
from pycat.session import values
from pycat.tribes import channel as ch
from pycat.tribes.io import codec

log = logging.getLogger(__name__)

CHUNK_BYTES = 4 * 1024 * 1024        # a state-transfer message carries at most about this much


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
        the state-transfer records (values of the app's classes come back as the new code's)."""
        if not isinstance(old, StateTransfer):
            return super().take_over(old)
        encode = old.value_encoder(local=True)
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
            log.warning("%s: malformed session data from %s", self.component_name, member_name(sender))
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

    def _send_all_sessions(self, member, token):
        """Answer a GET-ALL: every valid session, in acknowledged messages of bounded size."""
        started = time.monotonic()
        sessions = [s for s in list(self._sessions.values()) if s.valid]
        size = max(1, self.send_all_sessions_size)
        encode = self.value_encoder()
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
                                member_name(member), exc)
                    continue
                if len(blob) > CHUNK_BYTES * 3:
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

    def _replica_from_record(self, parsed, resolve):
        """A new backup copy built straight from a parsed record (the state transfer's common case:
        the joiner has none of the sessions yet). As a deserialised session in Tomcat: session
        listeners hear it created (notifySessionListenersOnReplication), values hear they were
        activated, attribute listeners hear nothing. (session or None, refused values)."""
        sid, ctime, lat, interval, principal, auth_type, clock, attrs, versions = parsed
        if not self._admits(sid):
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
