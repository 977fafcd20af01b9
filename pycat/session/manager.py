"""Managers: create, find, expire and (StandardManager) persist sessions.

``ManagerBase`` is Tomcat's ManagerBase: the live table, ids, limits, expiry, statistics and
the listener list. Its seams for the cluster's DeltaManager/BackupManager are
``create_empty_session`` (which Session class), ``create_session``, ``add``, ``remove``,
``find_session``, ``change_session_id``, ``check_serializable`` and ``attribute_observer`` (an
AttributeObserver every session it makes reports attribute reads, writes and removals to).

Values in and out: ``dump_value(value)`` and ``load_value(blob, trusted)`` are the only way the
manager's sessions' values become bytes and come back (pycat.session.values), for every source:
the restart file, the stores, the cluster. They apply ``sessionAttributeValueClassNameFilter`` and
bind the app's import loader; ``encode_session``/``decode_session`` do a whole session record with
them, leaving out (with a warning) what the filter refuses.

``StandardManager`` adds persistence across a graceful restart: ``stop()`` saves every valid
session to ``pathname`` (see persistence.py for the format), ``start()`` loads and deletes it.

Two seams serve the cluster and redeploys (design.md section 14, "Replication seam"):

* ``clone()``: a new, unstarted manager of the same class with the same configured attributes (and
  a copy of the ``<SessionIdGenerator>``): a ``<Manager>`` inside ``<Cluster>`` is such a template,
  cloned for each distributable Context (Tomcat's ClusterManager.cloneFromTemplate).
* ``take_over(old)``: during a redeploy the new Context's manager takes the old one's sessions, once
  the old Context has stopped: the file a StandardManager saved at stop is loaded (values of the
  app's classes come back as the new code's classes), sessions still live in ``old`` (a manager that
  does not persist) are copied over through their record bytes. A PersistentManager's store hands
  its sessions over by itself. DeltaManager (issue 10) overrides it.
"""
import collections
import gc
import logging
import os
import re
import time

from pycat.attrs import Attr, configurable_attrs
from pycat.lifecycle import Lifecycle
from pycat.session import persistence, values
from pycat.session.errors import NotSerializableError, TooManyActiveSessions
from pycat.session.events import SessionListeners
from pycat.session.id_generator import SessionIdGenerator, parse_session_id
from pycat.session.session import Session

log = logging.getLogger(__name__)

#: Tomcat keeps the last 100 expirations for its alive-time and rate statistics
TIMING_STATS_SIZE = 100


class ManagerBase(Lifecycle):
    session_class = Session
    #: the AttributeObserver of every session this manager makes (None: nobody observes)
    attribute_observer = None

    name = Attr(str, None, "manager name (the context's name by default)")
    max_active_sessions = Attr(int, -1, "most live sessions; beyond it create_session is refused (-1: no limit)")
    process_expires_frequency = Attr(int, 6, "run expiry every N background ticks")
    max_inactive_interval = Attr(int, 1800, "default session timeout in seconds (web.xml session-config overrides)")
    session_id_length = Attr(int, None, "random bytes per id; Tomcat moved this to <SessionIdGenerator>, both work")
    notify_binding_listener_on_unchanged_value = Attr(bool, False, "call value_bound again when the same object is set")
    notify_attribute_listener_on_unchanged_value = Attr(bool, True, "fire attribute_replaced when the same object is set")
    secure_random_algorithm = Attr(str, None, "accepted for Tomcat compatibility; ignored (secrets is used)")
    secure_random_class = Attr(str, None, "accepted for Tomcat compatibility; ignored")
    secure_random_provider = Attr(str, None, "accepted for Tomcat compatibility; ignored")
    session_attribute_value_class_name_filter = Attr(
        str, None, "regex (fullmatch) on module.QualName of the attribute values written to and loaded "
                   "from the restart file or a store, and of every class or function a saved value "
                   "references when it is loaded back (refused ones are dropped with a warning; app "
                   "classes may be named as the app imports them, e.g. cart\\.Cart). Unset: those "
                   "sources are trusted completely (values are pickles)")

    def __init__(self):
        super().__init__()
        self.clock = time.time        # injected by tests
        self.context = None           # the owning Context (set by the container)
        self.distributable = False    # <distributable/> in web.xml: attribute values must serialise
        self.jvm_route = None         # the Engine's jvmRoute, appended to ids
        self.work_dir = None          # the context's work directory (persistence files live there)
        self.session_id_generator = SessionIdGenerator()
        self.listeners = SessionListeners()
        self._sessions = {}
        self._background_count = 0
        # statistics, Tomcat's names
        self.session_counter = 0
        self.expired_sessions = 0
        self.rejected_sessions = 0
        self.duplicates = 0
        self.max_active = 0
        self.session_max_alive_time = 0.0
        self.process_expires_time = 0.0
        self._expiration_timings = collections.deque(maxlen=TIMING_STATS_SIZE)
        self._filter_source = None
        self._filter = None

    # -- configuration seams ---------------------------------------------------------------
    def set_session_id_generator(self, generator):
        """<SessionIdGenerator> nested in <Manager>."""
        self.session_id_generator = generator

    def add_session_listener(self, listener):
        """Register a web.xml session listener; what it hears depends on its methods."""
        return self.listeners.add(listener)

    def remove_session_listener(self, listener):
        self.listeners.remove(listener)

    def _init(self):
        for attr in ("secure_random_algorithm", "secure_random_class", "secure_random_provider"):
            if getattr(self, attr):
                log.debug("%s: %s=%r ignored: session ids always come from Python's secrets",
                          self.component_name, attr, getattr(self, attr))
        self.value_class_filter()      # a bad pattern fails the manager's init, not the first save

    def clone(self):
        """A new manager of this class configured as this one (a cluster's <Manager> template):
        every attribute set explicitly is copied, and the <SessionIdGenerator> is cloned the same
        way; nothing of the runtime state (sessions, context, listeners, statistics) is."""
        copy = type(self)()
        _copy_configured(self, copy)
        generator = self.session_id_generator
        if generator is not None:
            twin = type(generator)()
            _copy_configured(generator, twin)
            copy.set_session_id_generator(twin)
        return copy

    def saved_sessions_path(self):
        """The file this manager saves its sessions to when it stops, or None (no file)."""
        return None

    def take_over(self, old):
        """Redeploy handover: take the sessions of ``old``, the replaced Context's manager, which
        has stopped (or is stopping). Returns how many sessions were taken."""
        taken = 0
        path = old.saved_sessions_path() if old is not None and hasattr(old, "saved_sessions_path") else None
        if path and os.path.exists(path):
            taken += self.load_file(path)
        live = [s for s in old.find_sessions() if s.is_valid] if old is not None else []
        for session in live:
            try:
                copy = self.decode_session(old.encode_session(session), trusted=True)
            except persistence.RecordError as exc:
                log.error("%s: session %s of %s could not be taken over: %s", self.component_name,
                          session.id, old.component_name, exc)
                continue
            if copy.id in self._sessions:
                continue
            self.add(copy)
            copy.activate()
            self.session_counter += 1
            taken += 1
        if taken:
            log.info("%s: took over %d sessions from %s", self.component_name, taken, old.component_name)
        return taken

    def load_file(self, path):
        """Load sessions saved in ``path`` (persistence.py format; expired and damaged ones are
        skipped), activate them, delete the file. Returns how many were loaded."""
        if path is None or not os.path.exists(path):
            return 0
        loaded = skipped = expired = 0
        now = self.clock()
        data, close = persistence.open_file(path)
        # hundreds of thousands of new long-lived objects would trigger full collections over
        # and over (quadratic-ish); nothing here makes cycles worth collecting mid-load
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            # the app's loader bound once for the file (binding costs microseconds, per value)
            with values.bound(self.app_loader):
                try:
                    announced = persistence.check_header(data, path)
                except persistence.RecordError as exc:
                    log.error("%s: %s", self.component_name, exc)
                    self._quarantine(path)
                    return 0
                for payload in persistence.iter_records(data, path):
                    try:
                        session = self.decode_session(payload, trusted=True)   # our own 0600 file
                    except persistence.RecordError as exc:
                        skipped += 1
                        log.error("%s: %s: a saved session could not be restored, skipped: %s",
                                  self.component_name, path, exc)
                        continue
                    interval = session.max_inactive_interval
                    if not session.valid or (interval > 0 and now - session.this_accessed_time >= interval):
                        expired += 1
                        continue
                    if session.id in self._sessions or parse_session_id(session.id) is None:
                        skipped += 1
                        log.warning("%s: saved session %r duplicates a live one or has a bad id, skipped",
                                    self.component_name, session.id)
                        continue
                    self.add(session)
                    session.activate()
                    self.session_counter += 1
                    loaded += 1
        finally:
            if gc_was_enabled:
                gc.enable()
            del data
            close()
        try:
            os.unlink(path)
        except OSError as exc:
            log.warning("%s: could not delete %s: %s", self.component_name, path, exc)
        missing = announced - loaded - expired - skipped
        log.info("%s: restored %d sessions from %s (%d expired, %d damaged, %d unreadable)",
                 self.component_name, loaded, path, expired, skipped, max(0, missing))
        return loaded

    def _quarantine(self, path):
        target = path + ".corrupt"
        try:
            os.replace(path, target)
            log.error("%s: unreadable sessions file kept as %s", self.component_name, target)
        except OSError as exc:
            log.warning("%s: could not move %s aside: %s", self.component_name, path, exc)

    # -- the live table ------------------------------------------------------------------------
    @property
    def active_sessions(self):
        return len(self._sessions)

    def counted_sessions(self):
        """How many sessions count against maxActiveSessions (a BackupManager counts its primaries)."""
        return len(self._sessions)

    def find_sessions(self):
        return list(self._sessions.values())

    def add(self, session):
        self._sessions[session.id] = session
        if len(self._sessions) > self.max_active:
            self.max_active = len(self._sessions)

    def remove(self, session, update=False):
        """Drop from the table; ``update`` (an expiry) feeds the alive-time statistics."""
        if update:
            alive = self.clock() - session.creation_time
            self.expired_sessions += 1
            if alive > self.session_max_alive_time:
                self.session_max_alive_time = alive
            self._expiration_timings.append(alive)
        if session.id is not None and self._sessions.get(session.id) is session:
            del self._sessions[session.id]

    @property
    def session_average_alive_time(self):
        timings = self._expiration_timings
        return sum(timings) / len(timings) if timings else 0.0

    def find_session(self, session_id):
        """The live, valid session with this id, else None: malformed, forged, unknown and
        expired ids all answer None (the caller then creates a fresh session)."""
        if parse_session_id(session_id) is None:
            return None
        session = self._sessions.get(session_id)
        if session is None or not session.is_valid:
            return None
        return session

    # -- creation --------------------------------------------------------------------------------
    def create_empty_session(self):
        return self.session_class(self)

    def generate_session_id(self):
        """A fresh id not in the live table (a collision is counted and retried)."""
        while True:
            sid = self.session_id_generator.generate_session_id(self.jvm_route, self.session_id_length)
            if sid not in self._sessions:
                return sid
            self.duplicates += 1

    def create_session(self, session_id=None):
        """A new valid session, added to the table, with session_created fired.

        Raises TooManyActiveSessions when maxActiveSessions is reached.
        """
        limit = self.max_active_sessions
        if limit is not None and limit >= 0 and self.counted_sessions() >= limit:
            self.rejected_sessions += 1
            raise TooManyActiveSessions(limit, self.name)
        session = self.create_empty_session()
        session.is_new = True
        session.valid = True
        now = self.clock()
        session.creation_time = session.last_accessed_time = session.this_accessed_time = now
        session.max_inactive_interval = self.max_inactive_interval
        if session_id is None or parse_session_id(session_id) is None or session_id in self._sessions:
            session_id = self.generate_session_id()
        session.set_id(session_id)
        self.session_counter += 1
        return session

    def change_session_id(self, session, new_id=None):
        """Give the session a new id (login, against fixation); fires session_id_changed.
        Returns the new id."""
        if new_id is None:
            new_id = self.generate_session_id()
        old_id = session.id
        session.set_id(new_id, notify=False)
        session.tell_changed_session_id(new_id, old_id)
        return new_id

    rotate_session_id = change_session_id

    def expire_session(self, session_id):
        session = self._sessions.get(session_id)
        if session is not None:
            session.expire()

    def check_serializable(self, name, value):
        """Raise NotSerializableError unless value can travel (only asked when distributable)."""
        try:
            values.dump(value)
        except Exception as exc:
            raise NotSerializableError(name, value, "%s: %s" % (type(exc).__name__, exc)) from None

    # -- values in and out (pycat.session.values) ------------------------------------------------
    @property
    def app_loader(self):
        """The Context's import loader (WebappLoader), None outside a Context."""
        return getattr(self.context, "loader", None)

    def value_class_filter(self):
        """sessionAttributeValueClassNameFilter compiled, or None (recompiled when it changes)."""
        source = self.session_attribute_value_class_name_filter or None
        if source != self._filter_source:
            self._filter = re.compile(source) if source else None
            self._filter_source = source
        return self._filter

    def dump_value(self, value):
        """The bytes of one attribute value; ValueRefused when the class filter refuses it."""
        return values.dump(value, self.value_class_filter(), self.app_loader)

    def load_value(self, blob, trusted=True):
        """One attribute value back from its bytes, for every source. ``trusted``: a source only
        the nodes' user can write (the restart file, a store); an untrusted one (a cluster peer
        that did not authenticate) with no filter configured yields plain values only.
        ValueRefused when the filter or that rule refuses it."""
        return values.load(blob, trusted, self.value_class_filter(), self.app_loader)

    def encode_session(self, session):
        """The record bytes of a session (persistence.py); values the filter refuses or that cannot
        be serialised are left out with a warning."""
        def skip(name, exc):
            if isinstance(exc, values.ValueRefused):
                log.warning("%s: session %s: attribute %r not persisted: class %s", self.component_name,
                            session.id, name, exc)
            else:
                log.warning("%s: session %s: attribute %r (%s) not persisted, it cannot be serialised: %s",
                            self.component_name, session.id, name,
                            values.class_name(type(session.raw_attributes()[name])), exc)
        # the filter and the loader looked up once per session, not once per value
        dump = values.dump_function(self.value_class_filter(), self.app_loader)
        return persistence.encode_session(session, dump, skip)

    def decode_session(self, payload, trusted=True):
        """A session (not added, nobody told) from record bytes; RecordError when damaged. A value
        refused by the filter (or, from an untrusted source, not plain) is left out with a warning."""
        def refused(session_id, name, exc):
            log.warning("%s: session %s: saved attribute %r not loaded: class %s", self.component_name,
                        session_id, name, exc)
        # load_value's work with the filter and the loader looked up once per record, not per value
        loader = self.app_loader
        load = values.load_function(trusted, self.value_class_filter(), loader)
        if loader is None:
            return persistence.decode_session(payload, self.create_empty_session, load, refused)
        with values.bound(loader):
            return persistence.decode_session(payload, self.create_empty_session, load, refused)

    # -- periodic work ---------------------------------------------------------------------------
    def background_process(self):
        """Called by the container's background ticker: expiry every processExpiresFrequency ticks."""
        frequency = max(1, self.process_expires_frequency or 1)
        self._background_count = (self._background_count + 1) % frequency
        if self._background_count == 0:
            self.process_expires()

    def process_expires(self):
        """Expire every idle session past its interval; returns how many expired."""
        started = time.monotonic()
        expired = 0
        for session in list(self._sessions.values()):
            if session is not None and not session.is_valid:
                expired += 1
        self.process_expires_time += time.monotonic() - started
        if expired:
            log.debug("%s: expired %d sessions, %d active", self.component_name, expired, len(self._sessions))
        return expired

    def _stop(self):
        # what is still live at stop is destroyed, with listeners told (Tomcat's stopInternal)
        for session in list(self._sessions.values()):
            if session.valid:
                try:
                    session.expire()
                except Exception:
                    log.exception("%s: expiring %s at stop failed", self.component_name, session.id)
        self._sessions.clear()


class StandardManager(ManagerBase):
    """org.apache.catalina.session.StandardManager: in memory, saved across graceful restarts."""

    pathname = Attr(str, "SESSIONS.ser", "file sessions are saved to on stop, relative to the work dir; "
                                         "empty disables persistence")

    def persistence_path(self):
        """Absolute path of the sessions file, or None when persistence is off."""
        if not self.pathname:
            return None
        if os.path.isabs(self.pathname):
            return self.pathname
        base = self.work_dir or os.getcwd()
        return os.path.join(base, self.pathname)

    def _start(self):
        try:
            self.load()
        except Exception:
            # a bad file must not keep the application from starting: users just log in again
            log.exception("%s: could not load persisted sessions", self.component_name)

    def _stop(self):
        try:
            self.unload()
        except Exception:
            log.exception("%s: could not save sessions", self.component_name)
        super()._stop()

    def saved_sessions_path(self):
        return self.persistence_path()

    def load(self):
        """Load saved sessions (skipping expired and damaged ones), activate them, delete the file.
        Returns how many were loaded."""
        return self.load_file(self.persistence_path())

    def unload(self):
        """Save every valid session (after telling values they passivate), then drop them from
        memory without destroy events: they live on in the file. Returns how many were saved."""
        path = self.persistence_path()
        if path is None:
            return 0
        sessions = [s for s in self._sessions.values() if s.is_valid]
        if not sessions:
            log.debug("%s: no sessions to save", self.component_name)
            return 0
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        for session in sessions:
            session.passivate()
        records = (self.encode_session(s) for s in sessions)
        persistence.save_file(path, records, len(sessions))
        for session in sessions:
            session.expire(notify=False)
        log.info("%s: saved %d sessions to %s", self.component_name, len(sessions), path)
        return len(sessions)


def _copy_configured(source, target):
    """Copy every configurable attribute set explicitly on source (declared with Attr) to target."""
    for attr in set(configurable_attrs(type(source)).values()):
        if attr.name in source.__dict__:
            value = source.__dict__[attr.name]
            target.__dict__[attr.name] = type(value)(value) if isinstance(value, (list, dict, set)) else value
