r"""PersistentManager: sessions in memory backed by a <Store> (Tomcat's PersistentManagerBase).

* ``find_session`` looks in memory, then swaps the session in from the store. Nodes sharing one
  store therefore see each other's sessions: that is the failover mechanism.
* ``process_expires`` (every processExpiresFrequency background ticks) expires idle sessions in
  memory, runs the persistence checks, then removes expired sessions from the store:
  - maxIdleSwap >= 0: sessions idle at least that long (and at least minIdleSwap) are written to
    the store and dropped from memory;
  - maxActiveSessions >= 0: while more sessions are live, the longest idle ones (idle at least
    minIdleSwap) are swapped out;
  - maxIdleBackup >= 0: sessions idle at least that long are written to the store (once per
    access). maxIdleBackup = 0 also writes at the end of every request (``end_access`` of a
    session of this manager calls ``request_completed``), which is what failover needs.
* A session removed from memory (expired, invalidated, old id after change_session_id) is
  removed from the store too.
* stop(): with saveOnRestart every valid session is written to the store in one batch (no
  destroy events); without it they are destroyed (and so removed from the store). start()
  loads nothing eagerly: sessions come back one by one through find_session.
* Nodes sharing a store should use sticky sessions: find_session prefers a node's in-memory
  copy, so a node only reads the store for sessions it does not hold (Tomcat behaves the same).
* ``create_session`` at maxActiveSessions first tries to swap out an idle session.

Store trouble (disk, database down) never reaches the caller: it is logged (at most one
error line per STORE_ERROR_INTERVAL seconds, the rest at debug) and the manager serves from
memory; the store reconnects on its next operation.

sessionAttributeValueClassNameFilter (on the <Manager>, ManagerBase's, so StandardManager's
restart file honours it too): a regex matched (fullmatch) against ``module.QualName`` of each
attribute value when saving, and of every class or function a stored value references when
loading (pycat.session.values: a restricted unpickler that refuses before importing anything),
so a store written by someone else cannot make us import arbitrary classes or call arbitrary
functions. Values that do not match are left out, with a warning naming session, attribute and
class; the rest of the session loads. Unset (the default, as in Tomcat) nothing is filtered: the
store is trusted completely, because attribute values are pickles and loading a pickle can run
any code. So:

* keep the store private to the user the nodes run as (pycat creates FileStore folders 0700 and
  every record 0600; give a JDBC store's table to that database user only);
* when anyone else could write to it (a shared folder, a database other applications use), set
  the filter to exactly the classes your application stores, e.g.
  ``builtins\.(str|int|float|bool|list|dict|tuple|set|NoneType)|cart\.Cart`` (an app class as the
  app imports it, or with its full ``_pycat_webapp_...`` name). Never allow a whole module of
  callables such as ``builtins\..*``: ``builtins.eval`` would match too;
* a value whose class does not match is not written to the store either, so a node stores only
  what every node will accept.
"""
import logging
import time

import gevent.event

from pycat.attrs import Attr
from pycat.session.id_generator import parse_session_id
from pycat.session.manager import ManagerBase
from pycat.session.session import Session

log = logging.getLogger(__name__)

#: note holding the last_accessed_time of the copy in the store (Tomcat's PERSISTED_LAST_ACCESSED_TIME)
PERSISTED_NOTE = "pycat.persisted_last_accessed_time"
STORE_ERROR_INTERVAL = 10.0


class PersistentSession(Session):
    """A session that tells its PersistentManager when a request is done with it."""
    __slots__ = ()

    def end_access(self):
        super().end_access()
        self.manager.request_completed(self)


class PersistentManager(ManagerBase):
    session_class = PersistentSession

    max_idle_swap = Attr(int, -1, "seconds idle before a session is swapped out to the store (-1: never)")
    min_idle_swap = Attr(int, -1, "seconds a session must be idle before it may be swapped out (-1: no minimum)")
    max_idle_backup = Attr(int, -1, "seconds idle before a session is backed up to the store "
                                    "(-1: never; 0: also at the end of every request)")
    save_on_restart = Attr(bool, True, "write every session to the store on stop")

    def __init__(self):
        super().__init__()
        self.store = None
        self._swapping = {}            # id -> AsyncResult of a swap-in in progress
        self._store_error_at = None    # monotonic time of the last logged store error
        self._store_errors_hidden = 0
        self._store_failing = False

    # -- configuration ----------------------------------------------------------------------------
    def set_store(self, store):
        """<Store> nested in <Manager>."""
        self.store = store
        store.manager = self
        if self.state.available:
            store.start()

    def get_store(self):
        return self.store

    def _start(self):
        if self.store is None:
            log.error("%s: no <Store> configured: sessions live in memory only", self.component_name)
            return
        self.store.start()

    def _stop(self):
        if self.store is not None and self.save_on_restart:
            self.unload()
        super()._stop()
        if self.store is not None:
            try:
                self.store.stop()
            except Exception:
                log.exception("%s: stopping the store failed", self.component_name)

    # -- lookup and swap-in ----------------------------------------------------------------------
    def is_loaded(self, session_id):
        return session_id in self._sessions

    def find_session(self, session_id):
        session = super().find_session(session_id)
        if session is not None or parse_session_id(session_id) is None or self.store is None:
            return session
        if session_id in self._sessions:   # present but no longer valid
            return None
        return self.swap_in(session_id)

    def swap_in(self, session_id):
        """Load a session from the store into memory (listeners hear session_created and values
        session_did_activate, as in Tomcat). None if absent, expired, damaged or the store fails."""
        pending = self._swapping.get(session_id)
        if pending is not None:
            # another greenlet is already loading it: share its result, never load twice
            return pending.get()
        result = self._swapping[session_id] = gevent.event.AsyncResult()
        session = None
        try:
            session = self._swap_in(session_id)
        finally:
            del self._swapping[session_id]
            result.set(session)
        return session

    def _swap_in(self, session_id):
        try:
            session = self.store.load(session_id)
        except Exception as exc:
            self._store_failed("load", session_id, exc)
            return None
        self._store_ok()
        if session is None:
            return None
        if not session.is_valid:  # an expired one fires session_destroyed and leaves the store
            self._store_remove(session_id)
            return None
        live = self._sessions.get(session_id)
        if live is not None:
            return live
        self.add(session)
        session.set_note(PERSISTED_NOTE, session.last_accessed_time)  # the store has this copy
        session.tell_new()
        session.activate()
        log.debug("%s: swapped in %s", self.component_name, session_id)
        return session

    # -- removal keeps the store in step ------------------------------------------------------
    def remove(self, session, update=False):
        super().remove(session, update)
        if self.store is not None and session.id is not None:
            self._store_remove(session.id)

    def expire_stored(self, session):
        """Expire a session found expired in the store (not live here): destroyed listeners run."""
        session.expire()

    def _store_remove(self, session_id):
        try:
            self.store.remove(session_id)
        except Exception as exc:
            self._store_failed("remove", session_id, exc)

    # -- writing --------------------------------------------------------------------------------
    def swap_out(self, session):
        """Write the session to the store and drop it from memory (no destroy events). False if
        the store refused: the session then stays in memory."""
        if self.store is None or not session.valid:
            return False
        session.passivate()
        try:
            self.store.save(session)
        except Exception as exc:
            self._store_failed("swap out", session.id, exc)
            session.activate()
            return False
        self._store_ok()
        ManagerBase.remove(self, session)   # not self.remove: the stored copy must stay
        session.valid = False               # a stale reference must fail loudly, not write into the void
        log.debug("%s: swapped out %s", self.component_name, session.id)
        return True

    def backup(self, session):
        """Write the session to the store, keeping it in memory. True when written."""
        if self.store is None or not session.valid:
            return False
        try:
            self.store.save(session)
        except Exception as exc:
            self._store_failed("back up", session.id, exc)
            return False
        self._store_ok()
        session.set_note(PERSISTED_NOTE, session.last_accessed_time)
        return True

    def request_completed(self, session):
        """End of a request that used the session: with maxIdleBackup=0 the store gets it now."""
        if self.max_idle_backup == 0 and session.valid and session.manager is self:
            self.backup(session)

    def unload(self):
        """Write every valid session to the store in one batch and drop them from memory
        (stop with saveOnRestart; no destroy events). Returns how many were written."""
        sessions = [s for s in self._sessions.values() if s.valid]
        if self.store is None or not sessions:
            return 0
        for session in sessions:
            session.passivate()
        try:
            written = self.store.save_all(sessions)
        except Exception as exc:
            self._store_failed("save at stop", "(all)", exc)
            for session in sessions:
                session.activate()
            return 0
        for session in sessions:
            ManagerBase.remove(self, session)
            session.valid = False
        log.info("%s: saved %d sessions to the store", self.component_name, written)
        return written

    def create_session(self, session_id=None):
        limit = self.max_active_sessions
        if limit is not None and limit >= 0 and len(self._sessions) >= limit and self.store is not None:
            self.process_max_active_swaps(limit - 1)
        return super().create_session(session_id)

    # -- periodic work ---------------------------------------------------------------------------
    def process_expires(self):
        expired = super().process_expires()
        self.process_persistence_checks()
        if self.store is not None:
            try:
                self.store.process_expires()
            except Exception as exc:
                self._store_failed("expire stored sessions", None, exc)
        return expired

    def process_persistence_checks(self):
        if self.store is None:
            return
        self.process_max_idle_swaps()
        self.process_max_active_swaps()
        self.process_max_idle_backups()

    def _idle_sessions(self):
        for session in list(self._sessions.values()):
            if session.is_valid and session.access_count <= 0:
                yield session, session.idle_time()

    def process_max_idle_swaps(self):
        if self.max_idle_swap < 0:
            return 0
        swapped = 0
        for session, idle in self._idle_sessions():
            if idle >= self.max_idle_swap and idle >= self.min_idle_swap:
                swapped += self.swap_out(session)
        return swapped

    def process_max_active_swaps(self, limit=None):
        """Swap out the longest idle sessions (idle at least minIdleSwap) until at most
        ``limit`` (maxActiveSessions) are live."""
        limit = self.max_active_sessions if limit is None else limit
        if limit is None or limit < 0 or len(self._sessions) <= limit:
            return 0
        to_swap = len(self._sessions) - limit
        swapped = 0
        for session, idle in sorted(self._idle_sessions(), key=lambda pair: -pair[1]):
            if swapped >= to_swap:
                break
            if idle >= self.min_idle_swap:
                swapped += self.swap_out(session)
        return swapped

    def process_max_idle_backups(self):
        if self.max_idle_backup < 0:
            return 0
        written = 0
        for session, idle in self._idle_sessions():
            if idle >= self.max_idle_backup and session.get_note(PERSISTED_NOTE) != session.last_accessed_time:
                written += self.backup(session)
        return written

    # -- store error reporting ---------------------------------------------------------------------
    def _store_failed(self, op, session_id, exc):
        self._store_failing = True
        now = time.monotonic()
        if self._store_error_at is None or now - self._store_error_at >= STORE_ERROR_INTERVAL:
            hidden, self._store_errors_hidden = self._store_errors_hidden, 0
            self._store_error_at = now
            log.error("%s: store %s of session %s failed (serving from memory%s): %s: %s",
                      self.component_name, op, session_id,
                      ", %d similar errors not logged" % hidden if hidden else "", type(exc).__name__, exc)
        else:
            self._store_errors_hidden += 1
            log.debug("%s: store %s of session %s failed: %s", self.component_name, op, session_id, exc)

    def _store_ok(self):
        if self._store_failing:
            self._store_failing = False
            self._store_error_at = None
            log.info("%s: the store works again", self.component_name)
