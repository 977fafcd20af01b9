"""Store: where a PersistentManager keeps sessions it swapped out or backed up (Tomcat's Store/StoreBase).

A Store holds sessions as the record bytes of ``persistence.encode_session``; subclasses
(FileStore, JDBCStore) only move bytes and a little metadata:

* ``_read(id)`` -> payload bytes or None;
* ``_write(id, payload, session)`` (``session`` gives the columns a database indexes);
* ``_delete(id)``, ``_delete_all()``, ``_ids()``, ``_count()``;
* ``_expired_ids(now)`` -> ids whose stored copy is past its interval (default: read each one);
* ``_quarantine(id, reason)``: what to do with a record that does not decode.

Trust: attribute values are pickles, and loading a pickle can run any code. A store is loaded as
a trusted source (``manager.decode_session(payload, trusted=True)``): whoever can write to it (the
FileStore folder, the JDBCStore table) can therefore run code in every node that loads a session
from it, unless the manager's ``sessionAttributeValueClassNameFilter`` names the classes allowed
back in (see persistent.py): keep stores private to the nodes' user, or set it.

Store methods raise on I/O trouble (OSError, a database error); the manager catches, logs and
carries on from memory. ``load`` never raises for a damaged record: it logs, quarantines and
answers None, so one bad record costs one session, never the others.
"""
import logging

from pycat.lifecycle import Lifecycle
from pycat.session import persistence
from pycat.session.id_generator import parse_session_id

log = logging.getLogger(__name__)


class StoreError(Exception):
    """A store could not do what was asked (the cause is chained)."""


class Store(Lifecycle):
    """Base of FileStore and JDBCStore; ``manager`` is set by ``PersistentManager.set_store``."""

    def __init__(self):
        super().__init__()
        self.manager = None

    # -- the Store interface (Tomcat's names, snake_case) -------------------------------------
    def get_size(self):
        return self._count()

    def keys(self):
        return list(self._ids())

    def load(self, session_id):
        """The stored session (not added to the manager, no listener called), or None when
        absent, malformed or damaged."""
        if parse_session_id(session_id) is None:
            return None
        payload = self._read(session_id)
        if payload is None:
            return None
        return self._decode(session_id, payload)

    def save(self, session):
        """Write (replace) the session's record. Values the manager will not persist are left out."""
        if parse_session_id(session.id) is None:
            raise StoreError("refusing to store a session with a malformed id %r" % (session.id,))
        self._write(session.id, self.manager.encode_session(session), session)

    def save_all(self, sessions):
        """Write many sessions at once (stop with saveOnRestart); subclasses batch the I/O.
        Returns how many were written."""
        count = 0
        for session in sessions:
            self.save(session)
            count += 1
        return count

    def _encoded(self, sessions):
        """(session, payload) for each session with a well-formed id."""
        for session in sessions:
            if parse_session_id(session.id) is None:
                log.error("%s: session with malformed id %r not stored", self.component_name, session.id)
                continue
            yield session, self.manager.encode_session(session)

    def remove(self, session_id):
        if parse_session_id(session_id) is None:
            return
        self._delete(session_id)

    def clear(self):
        self._delete_all()

    def process_expires(self):
        """Remove stored sessions past their interval; one not live in the manager is expired
        (session_destroyed fires here, as in Tomcat). Returns how many were removed."""
        manager = self.manager
        now = manager.clock()
        removed = 0
        for sid in list(self._expired_ids(now)):
            if not manager.is_loaded(sid):
                session = self.load(sid)
                if session is not None and session.valid:
                    # a stored session may have been touched elsewhere since: re-check its times
                    interval = session.max_inactive_interval
                    if interval <= 0 or now - session.this_accessed_time < interval:
                        continue
                    try:
                        manager.expire_stored(session)
                    except Exception:
                        log.exception("%s: expiring stored session %s failed", self.component_name, sid)
            self._delete(sid)
            removed += 1
        if removed:
            log.debug("%s: removed %d expired sessions", self.component_name, removed)
        return removed

    # -- helpers for subclasses ----------------------------------------------------------------
    def _decode(self, session_id, payload):
        try:
            # the store is as trusted as our own files (see the module doc); the filter, when set, applies
            session = self.manager.decode_session(payload, trusted=True)
        except persistence.RecordError as exc:
            log.error("%s: stored session %s cannot be restored, skipped: %s",
                      self.component_name, session_id, exc)
            self._quarantine(session_id, str(exc))
            return None
        if session.id != session_id:
            log.error("%s: stored record for %s holds session %r, skipped",
                      self.component_name, session_id, session.id)
            self._quarantine(session_id, "id mismatch")
            return None
        return session

    def _metadata(self, payload):
        """(this_accessed_time, max_inactive_interval, valid) of a record without loading its
        values (they decode to None), or None if the record is damaged."""
        try:
            s = persistence.decode_session(payload, self.manager.create_empty_session, _no_value)
        except persistence.RecordError:
            return None
        return s.this_accessed_time, s.max_inactive_interval, s.valid

    def _expired_ids(self, now):
        for sid in list(self._ids()):
            payload = self._read(sid)
            if payload is None:
                continue
            meta = self._metadata(payload)
            if meta is None:
                continue  # damaged: load() quarantines it when someone asks for it
            accessed, interval, valid = meta
            if not valid or (interval > 0 and now - accessed >= interval):
                yield sid

    def _quarantine(self, session_id, reason):
        pass

    # -- what subclasses implement ---------------------------------------------------------------
    def _read(self, session_id):
        raise NotImplementedError

    def _write(self, session_id, payload, session):
        raise NotImplementedError

    def _delete(self, session_id):
        raise NotImplementedError

    def _delete_all(self):
        for sid in list(self._ids()):
            self._delete(sid)

    def _ids(self):
        raise NotImplementedError

    def _count(self):
        return len(list(self._ids()))


def _no_value(blob):
    return None
