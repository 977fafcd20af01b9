"""BackupManager: each session on its primary node and one backup, a proxy entry elsewhere.

Tomcat's BackupManager (reference section 1.3 and 5), on pycat's replicated map
(``pycat.tribes.tipis.lazy_replicated_map``), one map per application named ``<manager name>-map``.
Only nodes that run the application are members of its map, so a node without it holds none of its
sessions and hears none of its messages.

The manager's table (``_sessions``) holds the sessions whose value is on this node: those it is the
primary of and those it backs up. The map knows every session of the app: which node is primary,
which is the backup, and, for the others, keeps a proxy entry that says where the session lives.

* **A new session** is published at the end of its first request (``request_completed``): the map
  chooses a backup in turn among the map members and sends it the whole session; the other members
  get a proxy entry. Publishing at the end rather than at creation sends the request's first values
  with the session and nothing for a session that never leaves the request.
* **Later requests** send their changes to the backup only, as one DeltaRequest (the same tracker,
  values, trust rules and versions as the DeltaManager: ``ClusterManagerBase``); a request that
  changed nothing sends an ACCESS message when the backup last heard of the session more than its
  interval ago, so the backup copy does not expire. With ``mapSendOptions`` 6 (the default) the
  response leaves after the backup applied the change.
* **Another node's session** (a request that lands here after a failover, or without a sticky
  balancer): ``find_session`` asks the map, which fetches the session from its backup and makes this
  node its primary (the old primary becomes a proxy, the backup stays); the JvmRouteBinderValve then
  gives it this node's route as with DeltaManager (an id change: the old key is removed from the
  map and the new one published).
* **A node leaves** (crash or stop): the backup of each of its sessions becomes primary and chooses
  a new backup; each primary whose backup it was chooses a new one. So every session again has two
  copies once the map has reacted.
* **Expiry** happens on the primary, which removes the session from the map everywhere; a backup
  copy expires silently at twice its interval (its primary went quiet).

``maxActiveSessions`` counts the sessions this node is primary of.
"""
import logging
import secrets

from pycat.attrs import Attr
from pycat.errors import ConfigError, ProtocolError
from pycat.ha.session import delta as d
from pycat.ha.session import delta_session as ds
from pycat.ha.session.cluster_manager import ClusterManagerBase, member_name
from pycat.session import values
from pycat.session.id_generator import parse_session_id
from pycat.tribes import channel as ch
from pycat.tribes.tipis.lazy_replicated_map import LazyReplicatedMap

log = logging.getLogger(__name__)


class BackupManager(ClusterManagerBase):
    session_class = ds.DeltaSession

    map_send_options = Attr(ch.parse_send_options, ch.USE_ACK | ch.SYNCHRONIZED_ACK,
                            "send options of the map's messages: an int or names (6: use_ack,sync: a request "
                            "ends after the backup applied its change)")
    rpc_timeout = Attr(int, 15000, "ms to wait for a map RPC (finding members, fetching a session)")
    terminate_on_start_failure = Attr(bool, False, "fail the application's start when the map cannot reach "
                                      "the other members (false: warn and join them later)")
    access_timeout = Attr(int, 5000, "ms a map member may stay silent to pings before it counts as gone")
    expire_sessions_on_shutdown = Attr(bool, False, "expire this node's primary sessions everywhere when it "
                                       "stops (false: their backups take them over)")

    def __init__(self):
        super().__init__()
        self.map = None
        self._handed = False        # this stopped manager's map went to a redeploy's new one (take_over)
        # statistics
        self.counter_send_delta = 0
        self.counter_send_accessed = 0
        self.counter_published = 0
        self.counter_taken_over = 0
        self.counter_receive_delta = 0
        self.counter_dropped = 0

    @property
    def map_name(self):
        return self.cluster_manager_name + "-map"

    # -- lifecycle -----------------------------------------------------------------------------
    def _start(self):
        cluster = self.cluster
        if cluster is None:
            log.warning("%s: a BackupManager outside a <Cluster> keeps its sessions on this node",
                        self.component_name)
            return
        local = cluster.get_local_member()
        self.writer = getattr(local, "name", None) or self.jvm_route or secrets.token_hex(4)
        running = self._running_map()
        if running is not None:
            # a redeploy: the replaced Context's manager still runs this app's map; this manager
            # takes it over in take_over() (its values become this code's objects), so the other
            # nodes see no member leave and no session moves
            self.map = running
            log.info("%s: taking over the running session map %s of the replaced application",
                     self.component_name, self.map_name)
            return
        self.map = LazyReplicatedMap(self, cluster.channel, self.map_name, rpc_timeout=self.rpc_timeout,
                                     send_options=self.map_send_options,
                                     terminate_on_start_failure=self.terminate_on_start_failure,
                                     access_timeout=self.access_timeout)
        try:
            self.map.start()
        except Exception as exc:
            self.map = None
            raise ConfigError("%s: the session map %s could not reach the cluster (terminateOnStartFailure): %s"
                              % (self.component_name, self.map_name, exc)) from exc
        log.info("%s: session map %s started with %d other member(s) running the application",
                 self.component_name, self.map_name, len(self.map.map_members()))

    def _running_map(self):
        """This app's map, still run by the manager of the Context a redeploy replaces; else None."""
        channel = self.cluster.channel
        for listener in list(getattr(channel, "channel_listeners", ())):
            if isinstance(listener, LazyReplicatedMap) and listener.map_name == self.map_name \
                    and isinstance(listener.owner, BackupManager) and listener.owner is not self \
                    and listener.owner.map is listener:
                return listener
        return None

    def take_over(self, old):
        """Redeploy handover (after the old Context stopped): every session the old manager held
        here, primary or backup, is rebuilt through its record (values of the app's classes come
        back as the new code's) and replaces the old object in the map."""
        if not isinstance(old, BackupManager) or old.map is not None or self.map is None \
                or self.map.owner is not self or not old._handed:
            return super().take_over(old)
        encode = old.value_encoder(local=True)
        taken = 0

        def convert(key, value):
            nonlocal taken
            try:
                with values.bound(old.app_loader):
                    record = ds.to_record(value, encode)
                copy = self.create_empty_session()
                refused = self._fill(copy, ds.parse_record(record), trusted=True)
            except Exception as exc:
                log.error("%s: session %s of %s could not be taken over: %s", self.component_name, key,
                          old.component_name, exc)
                return value
            copy.is_primary = value.is_primary
            self._log_refused(copy, refused, None)
            self.add(copy)
            copy.activate()
            taken += 1
            return copy
        self.map.hand_over(self, convert)
        old._handed = False
        if taken:
            log.info("%s: took over %d sessions from %s", self.component_name, taken, old.component_name)
        return taken

    def _stop(self):
        if self.expire_sessions_on_shutdown:
            for session in list(self._sessions.values()):
                if session.valid and session.is_primary:
                    try:
                        session.expire(True)
                    except Exception:
                        log.exception("%s: expiring %s at stop failed", self.component_name, session.id)
        cluster_map, self.map = self.map, None
        if cluster_map is not None and cluster_map.owner is self:
            newer = self._running_map_taker(cluster_map)
            if newer is not None:
                # a redeploy's new manager took the map: it rebuilds these sessions (take_over)
                cluster_map.owner = newer
                self._handed = True
            else:
                # the other members hear this map stopped: the backups of its sessions take them over
                try:
                    cluster_map.breakdown()
                except Exception:
                    log.exception("%s: stopping the session map failed", self.component_name)
        for session in list(self._sessions.values()):
            session.tracker = session.observer = None
            if session.valid:
                session.passivate()
        self._sessions.clear()

    def _running_map_taker(self, cluster_map):
        """The BackupManager (a redeploy's) that adopted ``cluster_map``, else None."""
        cluster = self.cluster
        newer = cluster.get_manager(self.cluster_manager_name) if cluster is not None else None
        if isinstance(newer, BackupManager) and newer is not self and newer.map is cluster_map:
            return newer
        return None

    # -- the table, and the map behind it ------------------------------------------------------------
    def find_session(self, session_id):
        """The session, taken over from the node that has it when this node only knows where it is
        (module doc); None when unknown, malformed or expired."""
        if parse_session_id(session_id) is None:
            return None
        session = self._sessions.get(session_id)
        cluster_map = self.map
        entry = cluster_map.entry(session_id) if cluster_map is not None else None
        if entry is None:
            # not in the map: a session still in its first request here (published at its end)
            if session is not None and not session.is_primary:
                session = None
        elif not entry.is_primary or entry.value is not session:
            try:
                session = cluster_map.get(session_id)
            except Exception:
                log.exception("%s: taking over session %s failed", self.component_name, session_id)
                return None
        if session is None or not session.is_valid:
            return None
        return session

    def counted_sessions(self):
        """maxActiveSessions counts the sessions this node is primary of (copies held for other
        nodes do not count)."""
        return sum(1 for s in list(self._sessions.values()) if s.is_primary)

    def roles(self):
        """{session id: "primary" | "backup" | "proxy"} as the map sees them here (tests, status)."""
        cluster_map = self.map
        if cluster_map is None:
            return {sid: "primary" for sid in self._sessions}
        out = {}
        for key in cluster_map.keys(full=True):
            entry = cluster_map.entry(key)
            if entry is not None:
                out[key] = "primary" if entry.is_primary else "backup" if entry.is_backup else "proxy"
        return out

    # -- a request's end -------------------------------------------------------------------------
    def _replicate(self, session, ending):
        if session.tracker is None or self.map is None:
            return None
        if not session.valid:
            session.tracker = session.observer = None
            return None
        delta = self._request_delta(session, ending)
        if delta is not None:
            self._stamp(session, delta)
        now = self.clock()
        cluster_map = self.map
        entry = cluster_map.entry(session.id)
        session.is_primary = True
        if entry is None or not entry.is_primary:
            # first time out of its request (or this node is not the map's primary of it yet):
            # the whole session goes to a new backup, proxies to the others
            cluster_map.put(session.id, session)
            session.last_replicated = now
            self.counter_published += 1
            return "published"
        if delta is not None:
            diff = delta.to_plain(encode=self.value_encoder(session))
            cluster_map.replicate(session.id, diff=diff)
            session.last_replicated = now
            self.counter_send_delta += 1
            return "delta"
        interval = session.max_inactive_interval
        if interval > 0 and now - session.last_replicated > interval / 2.0:
            # the backup's copy would expire at twice the interval without news; an ACCESS now and
            # then (at most twice per interval) keeps it
            cluster_map.replicate(session.id)
            session.last_replicated = now
            self.counter_send_accessed += 1
            return "accessed"
        return None

    def change_session_id(self, session, new_id=None):
        """A new id (login, JvmRouteBinderValve): renamed here, and in the map (the old key removed
        everywhere, the session published under the new one)."""
        old_id = session.id
        new_id = super().change_session_id(session, new_id)
        if session.tracker is not None:
            session.tracker.delta.session_id = new_id
        cluster_map = self.map
        if cluster_map is not None and cluster_map.entry(old_id) is not None:
            # the old key goes everywhere, this very session is published under the new one (the
            # map's entry for the old key may already point elsewhere if another node took it
            # over meanwhile; this request's session is the one that lives on)
            try:
                cluster_map.remove(old_id, notify=True)
                cluster_map.put(new_id, session)
                session.is_primary = True
                session.last_replicated = self.clock()
            except Exception:
                log.exception("%s: moving session %s to its new id in the map failed", self.component_name,
                              old_id)
        return new_id

    rotate_session_id = change_session_id

    def remove(self, session, update=False):
        super().remove(session, update)
        if update and self.map is not None and session.id is not None and not session.is_primary:
            # a backup copy expiring on its own: drop the entry here only
            entry = self.map.entry(session.id)
            if entry is not None and not entry.is_primary:
                self.map.remove(session.id, notify=False)

    def session_expired(self, session, session_id):
        """A primary session expired or was invalidated here: every map member drops it."""
        if self.map is not None and self.state.available:
            try:
                self.map.remove(session_id, notify=True)
            except Exception:
                log.exception("%s: removing expired session %s from the map failed", self.component_name,
                              session_id)

    # -- the map's owner (pycat.tribes.tipis MapOwner) --------------------------------------------
    def value_to_wire(self, key, session):
        with values.bound(self.app_loader):
            return ds.to_record(session, self.value_encoder())

    def value_from_wire(self, key, plain, sender):
        """A whole session from a peer (a backup, or a fetched one this node is taking over): a new
        copy in the table, as a backup; the map makes it primary if it is taken over."""
        parsed = ds.parse_record(plain)
        if parsed[0] != key:
            # the map's key is the session's id (a record encoded just before an id change)
            parsed = (key,) + tuple(parsed[1:])
        with values.bound(self.app_loader):
            old = self._sessions.get(key)
            if old is not None and old.valid:
                refused = ds.merge_record(old, parsed, self._resolve, self.notify_listeners_on_replication)
                session = old
            else:
                if not self._admits_copy(key):
                    raise ProtocolError("session %s not admitted" % key)
                session = self.create_empty_session()
                refused = self._fill(session, parsed)
                self.add(session)
                session.activate()
        session.is_primary = False
        session.this_accessed_time = self.clock()
        self._log_refused(session, refused, sender)
        return session

    def _fill(self, session, parsed, trusted=False):
        sid, ctime, lat, interval, principal, auth_type, clock, attrs, versions = parsed
        resolve = self._resolve_trusted if trusted else self._resolve
        refused = []
        attributes = {}
        for name, value in attrs:
            try:
                attributes[name] = resolve(name, value)
            except values.ValueRefused as exc:
                refused.append((name, exc))
        session.fill(sid, ctime, lat, self.clock(), interval, ds.principal_object(principal), auth_type, clock,
                     versions, attributes)
        return refused

    def _admits_copy(self, session_id):
        # copies are not primaries: maxActiveSessions does not count them; only the id is checked
        if parse_session_id(session_id) is None:
            log.warning("%s: replicated session id %r is malformed; dropped", self.component_name, session_id)
            return False
        return True

    def apply_diff(self, key, session, plain, sender):
        """A request's changes from the session's primary, applied to the copy held here."""
        self.counter_receive_delta += 1
        delta = d.DeltaRequest.from_plain(plain)
        if delta.session_id != key:
            raise ProtocolError("delta for %r under key %r" % (delta.session_id, key))
        with values.bound(self.app_loader):
            _start, refused = session.apply(delta, self._resolve, self.notify_listeners_on_replication)
        self._log_refused(session, refused, sender)
        self.entry_accessed(key, session)
        return session

    def entry_accessed(self, key, session):
        """The primary used the session (a delta or an ACCESS message): the copy's idle clock restarts."""
        now = self.clock()
        session.this_accessed_time = session.last_accessed_time = now

    def object_made_primary(self, key, session):
        """The map made this node the primary of ``key`` (a take-over or a promotion)."""
        if session is None:
            return
        session.is_primary = True
        session.last_replicated = self.clock()
        if self._sessions.get(key) is not session and session.id == key:
            self.add(session)
        self.counter_taken_over += 1
        log.debug("%s: this node is now the primary of session %s", self.component_name, key)

    def entry_removed(self, key, session):
        """A peer removed the session (expiry there) or took it over (this node keeps a proxy)."""
        if session is not None and self._sessions.get(key) is session:
            session.tracker = session.observer = None
            super().remove(session)

    def _log_refused(self, session, refused, sender):
        for name, exc in refused:
            self.counter_dropped += 1
            log.warning("%s: session %s: attribute %r from %s not applied: %s", self.component_name,
                        session.id, name, member_name(sender), exc)

