"""LazyReplicatedMap: a map whose every value lives on two nodes (Tomcat's LazyReplicatedMap).

The node that puts (or last got) a key is its primary; it sends the full value to one backup
node, chosen round robin over the map members, and tells every other map member where the key
lives (a proxy entry: primary and backup, no value). A ``get`` on a backup or proxy node moves the
primary there, so the value stays on exactly two nodes. When a member goes, its backups are
promoted and its primaries' backups replaced (map_state.EntryTable.member_gone).

Map members are the channel members that run a map of the same name: found with an INIT RPC at
start, told with START, refreshed by a PING RPC on every channel heartbeat, dropped on STOP, on
the channel's member_disappeared, or after ``access_timeout`` ms of silence. A map that speaks
(START, an answer) before the channel has its member becomes a map member when the channel's
member_added comes (within ``access_timeout``). A map that started with no map member to ask
transfers the state from the first one it meets (at the next ping): a node whose map started
before its peers were known still learns the keys that existed before. Messages (wire form
in map_message.py; plain sends use ``send_options``, RPCs drop SYNCHRONIZED_ACK):

    put             BACKUP (full value) -> the chosen backup; PROXY -> the other map members
    replicate       BACKUP (full value, or a diff) or ACCESS -> the backups
    get on a proxy  RETRIEVE_BACKUP (RPC, first reply) -> its backup, then its primary;
                    NOTIFY_MAPMEMBER -> the backup; PROXY -> the others
    get on a backup as put, from the copy held here
    remove          REMOVE -> every map member
    start           INIT (RPC, all replies) -> channel members; STATE (RPC) -> the first map member
                    that answers; START (RPC, all replies) -> map members
    breakdown       STOP -> channel members (no RPC)
    heartbeat       PING (RPC, all replies, access_timeout) -> channel members

Where this differs from Tomcat, it is so that the outcome does not depend on timing:

* entries carry versions (map_message.py, map_state.supersedes): a node ignores news about a key
  older than what it holds, so two nodes taking one key over at once (a failover, a node's
  promotion racing a request elsewhere) end with one primary on every node;
* INIT waits for all replies (nodes without the map answer at once with NoRpcChannelReply), so
  the map knows all its members when ``start`` returns; an RPC that fails for some members is
  asked again of the others, so one dead channel member does not fail a start;
* ``put`` sends no REMOVE before publishing: BACKUP and PROXY replace whatever each member held;
* a PROXY that replaces a value held here tells the owner (``entry_removed``), as a REMOVE does;
* ``rename`` does not publish the old key on the way (the owner may already have changed what the
  value says its key is);
* a publication whose backup vanishes while it is under way chooses another one.

The map spawns no greenlet: it runs on its caller's (put, get, replicate), on the receiver's
(messages, RPC requests), on the membership dispatcher's (member_disappeared) and on the
channel's heartbeat greenlet (ping). Nothing a peer sends raises out of the listener: malformed
messages are dropped, counted in ``dropped`` and logged with the sender (rate-limited).
"""
import collections
import logging
import time

import contextlib

import gevent
import gevent.event
import gevent.lock

from pycat.errors import ChannelError, ProtocolError
from pycat.tribes import channel as ch
from pycat.tribes.group import rpc
from pycat.tribes.tipis import map_message as mm
from pycat.tribes.tipis.map_state import EntryTable, MapEntry, RoundRobin, supersedes

__all__ = ["LazyReplicatedMap", "MapOwner", "MapEntry"]

log = logging.getLogger(__name__)

#: seconds between two warnings about the same repeating problem (same member, same kind)
LOG_INTERVAL = 60.0
#: members remembered at most as "its map spoke before the channel knew it"
_EARLY_MAX = 64


class MapOwner:
    """What the map asks of its owner (the BackupManager). Duck-typed; subclassing is optional.

    ``object_made_primary(key, value)``   this node became the primary of key (a get took it
                                          over, or a backup was promoted when its primary left)
    ``value_to_wire(key, value)``         the full copy of value as a codec plain value
    ``value_from_wire(key, plain, sender)``  a new value object from a full copy; may raise (the
                                          message is dropped and logged)
    ``apply_diff(key, value, plain, sender)``  apply a diff to the value held here; returns the
                                          value to keep (may raise: dropped and logged)
    ``entry_removed(key, value)``         optional: a value held here was dropped by a peer: its
                                          REMOVE, or its PROXY (it took the key over, or put it
                                          anew with another backup; this node keeps a proxy)
    ``entry_accessed(key, value)``        optional: the primary's ACCESS / NOTIFY_MAPMEMBER reached
                                          the copy held here (Tomcat's accessEntry: keep it fresh)
    """

    def object_made_primary(self, key, value):
        pass

    def value_to_wire(self, key, value):
        return value

    def value_from_wire(self, key, plain, sender):
        return plain

    def apply_diff(self, key, value, plain, sender):
        raise NotImplementedError("this owner sends no diffs")


def _now_ms():
    return time.monotonic() * 1000.0


class _LogLimiter:
    """Logs a repeating warning at most once per LOG_INTERVAL per key, then says how many it held
    back. Keys are (kind, member): bounded by the cluster's size, and cleared if they ever pile up."""

    MAX_KEYS = 256

    def __init__(self, interval=LOG_INTERVAL):
        self.interval = interval
        self._seen = {}

    def warning(self, key, fmt, *args):
        now = time.monotonic()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.interval:
            seen[1] += 1
            log.debug(fmt, *args)
            return
        held = seen[1] if seen is not None else 0
        if len(self._seen) >= self.MAX_KEYS:
            self._seen.clear()
        self._seen[key] = [now, 0]
        if held:
            fmt += " (%d similar messages not logged)"
            args += (held,)
        log.warning(fmt, *args)


class _MembershipForwarder:
    """The map's membership listener. A separate object because the channel calls heartbeat() on
    its membership listeners and on its channel listeners: the map must ping once per beat."""

    __slots__ = ("map",)

    def __init__(self, replicated_map):
        self.map = replicated_map

    def member_added(self, member):
        self.map.member_added(member)

    def member_disappeared(self, member):
        self.map.member_disappeared(member)


#: _send's answer when the message could not even be encoded (the owner's value is not plain)
_UNSENDABLE = {None: "unencodable"}


def _name(member):
    return getattr(member, "name", member)


class LazyReplicatedMap:
    def __init__(self, owner, channel, map_name, rpc_timeout=15000, send_options=6,
                 terminate_on_start_failure=False, access_timeout=5000):
        self.owner = owner
        self.channel = channel
        self.map_name = map_name
        # Tomcat's getBytes(ISO_8859_1): characters outside Latin-1 become "?"
        self.map_id = map_name.encode("iso-8859-1", "replace")
        self.rpc_timeout = rpc_timeout
        self.send_options = ch.parse_send_options(send_options)
        self.terminate_on_start_failure = terminate_on_start_failure
        self.access_timeout = access_timeout
        self.state = mm.NEW
        #: messages sent, by type code (each destination counts once)
        self.messages_sent = collections.Counter()
        #: map messages received (plain messages, RPC requests and replies)
        self.messages_received = 0
        #: received messages dropped: malformed, of an unexpected type, or not applicable here
        self.dropped = 0
        #: received news about a key older than what this node holds (ignored; see map_state.supersedes)
        self.stale = 0
        self._clock = 0             # Lamport clock of entry versions (map_message.py)
        self._table = EntryTable()
        self._members = {}          # Member -> ms (monotonic) last heard; insertion order = round robin's
        self._round_robin = RoundRobin()
        self._rpc = None
        self._membership = _MembershipForwarder(self)
        self._takeovers = {}        # key -> (greenlet, AsyncResult) of the get taking it over
        self._member_memo = {}      # member identity from the wire -> the channel's Member (map_message)
        self._key_locks = {}        # key -> [RLock, users]: one primary-side change of a key at a time
        self._state_transferred = False
        self._early = {}            # Member -> ms: its map spoke before the channel had it (see _member_alive)
        self._pinging = False
        self._limited = _LogLimiter()

    def __repr__(self):
        return "LazyReplicatedMap(%r, %s, %d entries, %d map members)" % (
            self.map_name, mm.STATE_NAMES.get(self.state), len(self._table), len(self._members))

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self):
        """Join the map: INIT, STATE, START. A ChannelError is raised (after breakdown) only with
        terminate_on_start_failure; otherwise it is logged and the map joins later through pings."""
        if self.state == mm.INITIALIZED:
            return
        began = time.monotonic()
        self.state = mm.NEW
        self._state_transferred = False
        self._rpc = rpc.RpcChannel(self.map_id, self.channel, self)
        self.channel.add_channel_listener(self)
        self.channel.add_membership_listener(self._membership)
        try:
            self._init_members()
            self._transfer_state()
            self.state = mm.STATETRANSFERRED
            self._announce_start()
        except ChannelError as exc:
            if self.terminate_on_start_failure:
                log.warning("map %s: could not reach the cluster at start (%s); breaking down", self.map_name, exc)
                self.breakdown()
                raise
            log.warning("map %s: could not reach every member at start (%s); it joins them through "
                        "pings", self.map_name, exc)
        self.state = mm.INITIALIZED
        log.info("map %s started in %d ms: %d map members, %d keys known", self.map_name,
                 (time.monotonic() - began) * 1000, len(self._members), len(self._table))

    def breakdown(self):
        """Leave the map: STOP to the channel members (no RPC), stop listening, forget everything.
        The peers promote the backups of this node's primary entries."""
        self.state = mm.DESTROYED
        was_running = self._rpc is not None
        if was_running:
            self._rpc.breakdown()
            self._rpc = None
        # stop listening first: the peers acting on STOP must not reach a half-gone map
        self.channel.remove_channel_listener(self)
        self.channel.remove_membership_listener(self._membership)
        try:
            members = list(self.channel.get_members()) if was_running else []
            if members:
                self._send(members, self._message(mm.STOP, primary=self._local()))
        except Exception as exc:  # a stopping channel must not fail the stop
            log.debug("map %s: STOP not sent: %s", self.map_name, exc)
        self._members.clear()
        self._early.clear()
        self._table.clear()
        self._state_transferred = False

    # -- the map -----------------------------------------------------------------------------------
    def put(self, key, value):
        """Make this node the primary of key; returns the backup members tuple (empty if none)."""
        mm.check_key(key)
        entry = self._table.put_primary(key, value, self._local())
        return self._publish(entry)

    def get(self, key):
        """The value, taking the primary role over if this node is not primary (None if unknown or
        if no copy could be retrieved). Concurrent gets of one key share one take-over."""
        entry = self._table.get(key)
        if entry is None:
            return None
        if entry.is_primary:
            return entry.value
        running = self._takeovers.get(key)
        if running is not None:
            leader, result = running
            if leader is gevent.getcurrent():
                # re-entered from inside the take-over (an owner callback): no waiting on ourselves
                return self.get_local(key)
            return result.get()
        result = gevent.event.AsyncResult()
        self._takeovers[key] = (gevent.getcurrent(), result)
        value = None
        try:
            value = self._take_over(entry)
        except Exception:
            log.exception("map %s: taking key %r over failed", self.map_name, key)
        finally:
            self._takeovers.pop(key, None)
            result.set(value)
        return value

    def get_local(self, key):
        """The value held here, without any take-over (None for proxies and unknown keys)."""
        entry = self._table.get(key)
        if entry is None or entry.is_proxy:
            return None
        return entry.value

    def replicate(self, key, diff=None, complete=False):
        """Primary only: complete -> BACKUP with the full value; a diff (plain value) -> BACKUP
        with the diff flag; neither -> ACCESS. To the backups only. A backup that fails is
        replaced (full copy to another member). Returns True when the backups have it. Serialised
        with the key's publications: a diff goes to the backup a finished publication chose."""
        with self._key_lock(key):
            entry = self._table.get(key)
            if entry is None or not entry.is_primary:
                return False
            if not entry.backups:
                # alone before (or the last backup failed): a member may be there now
                return bool(self._members) and bool(self._publish(entry))
            if complete:
                try:
                    plain = self.owner.value_to_wire(key, entry.value)
                except Exception:
                    log.exception("map %s: the owner could not encode key %r", self.map_name, key)
                    return False
                msg = self._message(mm.BACKUP, key, plain, False, entry.primary, entry.backups, version=entry.version)
            elif diff is not None:
                msg = self._message(mm.BACKUP, key, diff, True, entry.primary, entry.backups, version=entry.version)
            else:
                msg = self._message(mm.ACCESS, key, None, False, entry.primary, entry.backups, version=entry.version)
            faulty = self._send(entry.backups, msg)
            if not faulty:
                return True
            if faulty is _UNSENDABLE:
                return False
            return bool(self._publish(entry, exclude=faulty))

    def remove(self, key, notify=True):
        """Drop key here and, with notify, on every map member. Returns the value held here."""
        entry = self._table.remove(key)
        if entry is None:
            return None
        if notify and self._members:
            self._send(list(self._members), self._message(mm.REMOVE, key, version=entry.version))
        return entry.value

    def rename(self, old_key, new_key):
        """A session id change: remove(old) + put(new, value). Returns put's backups (or ()).
        The value is the one held here (fetched from its backup or primary if this node has a
        proxy); the old key is not published again on the way (the owner may already have changed
        what the value says its key is). The owner hears object_made_primary(new_key) if this node
        was not the primary of old_key."""
        mm.check_key(new_key)
        entry = self._table.get(old_key)
        if entry is None:
            return ()
        was_primary = entry.is_primary
        value = self._retrieve(entry)[0] if entry.is_proxy else entry.value
        self.remove(old_key)
        if value is None:
            return ()
        backups = self.put(new_key, value)
        if not was_primary:
            self._made_primary(new_key, value)
        return backups

    def hand_over(self, owner, convert):
        """A redeploy inside this node: ``owner`` takes this running map over (the peers see no
        change), and each value held here becomes ``convert(key, value)`` (the new code's object)."""
        self.owner = owner
        for key in self._table.keys(False):
            entry = self._table.get(key)
            if entry is not None and not entry.is_proxy:
                entry.value = convert(key, entry.value)

    def entry(self, key):
        """The MapEntry of key, or None (for reading: change the map through its methods)."""
        return self._table.get(key)

    def keys(self, full=False):
        """Keys holding a value here (full=True: proxies too)."""
        return self._table.keys(full)

    def size(self, full=False):
        return self._table.size(full)

    def map_members(self):
        return tuple(self._members)

    # -- taking a key over ----------------------------------------------------------------------------
    def _take_over(self, entry):
        key = entry.key
        local = self._local()
        if not entry.is_proxy:
            # a backup (or copy) holds the current value: become primary, publish to a new backup
            EntryTable.make_primary(entry, local, backups=())
            self._publish(entry)
            self._made_primary(key, entry.value)
            return entry.value
        value, source = self._retrieve(entry)
        if source is None:
            self._limited.warning(("retrieve", key), "map %s: no copy of key %r could be retrieved "
                                  "(primary %s, backups %s)", self.map_name, key, _name(entry.primary),
                                  [_name(b) for b in entry.backups])
            return None
        current = self._table.get(key)
        if current is not entry:
            # removed or replaced while we asked: the newer message wins
            return current.value if current is not None and current.is_primary else None
        if entry.is_primary:
            return entry.value
        keep = tuple(b for b in entry.backups if b in self._members)
        # the reply raised the clock to the version the copy was held at: this take-over is newer
        EntryTable.make_primary(entry, local, value, keep, self._stamp())
        if keep:
            notify = self._message(mm.NOTIFY_MAPMEMBER, key, None, False, local, keep, version=entry.version)
            faulty = self._send(keep, notify)
            if faulty:
                self._publish(entry, exclude=faulty)
            else:
                others = [m for m in self._members if m not in keep]
                self._send(others, self._message(mm.PROXY, key, None, False, local, keep, version=entry.version))
                if not all(b in self._members for b in entry.backups) and self._table.get(key) is entry:
                    self._publish(entry)   # the backup left while we told everyone (see _publish)
        else:
            self._publish(entry)
        self._made_primary(key, value)
        return value

    def _retrieve(self, entry):
        """(value, source) from the first of the entry's backups, then its primary, that has it."""
        key = entry.key
        local = self._local()
        candidates = [b for b in entry.backups if b != local]
        if entry.primary is not None and entry.primary != local and entry.primary not in candidates:
            candidates.append(entry.primary)
        request = self._message(mm.RETRIEVE_BACKUP, key).to_plain()
        for candidate in candidates:
            if self._rpc is None:
                break
            member = self.channel.get_member(candidate)
            if member is None:
                continue  # gone from the channel: no one to ask there
            self.messages_sent[mm.RETRIEVE_BACKUP] += 1
            try:
                responses = self._rpc.send([member], request, rpc.FIRST_REPLY, self.send_options, self.rpc_timeout)
            except ChannelError as exc:
                self._limited.warning(("send", member), "map %s: RETRIEVE_BACKUP of %r from %s failed: %s",
                                      self.map_name, key, member.name, exc)
                continue
            for response in responses:
                if response.message is None:
                    continue  # that node has no copy (an empty reply)
                reply = self._parse(response.message, response.source)
                if reply is None:
                    continue
                if reply.type != mm.RETRIEVE_BACKUP or reply.key != key or reply.value is None:
                    self._drop(response.source, "RETRIEVE_BACKUP reply not for key %r" % (key,))
                    continue
                try:
                    return self.owner.value_from_wire(key, reply.value, response.source), response.source
                except Exception:
                    log.exception("map %s: the owner could not decode key %r from %s", self.map_name, key,
                                  _name(response.source))
        return None, None

    def _made_primary(self, key, value):
        try:
            self.owner.object_made_primary(key, value)
        except Exception:
            log.exception("map %s: object_made_primary(%r) failed", self.map_name, key)

    # -- publishing -------------------------------------------------------------------------------
    def _publish(self, entry, exclude=()):
        """Give a primary entry a backup: BACKUP (full value) to the next member round robin (the
        following ones if a send fails), PROXY to the rest. Returns the backups tuple. ``exclude``:
        members not to choose (a backup that just failed); they still get the PROXY."""
        with self._key_lock(entry.key):
            exclude = set(exclude)
            for _ in range(3):
                backups = self._publish_once(entry, exclude)
                # the sends yield: if the chosen backup vanished meanwhile, its member_disappeared
                # looked at this entry before the choice was recorded, so choose again here
                if not backups or backups[0] in self._members or self._table.get(entry.key) is not entry:
                    return backups
                exclude.update(backups)
            return self._publish_once(entry, exclude)

    def _publish_once(self, entry, exclude):
        key = entry.key
        if self._table.get(key) is not entry or not entry.is_primary:
            # removed, renamed or taken over elsewhere since the caller picked it (member_gone's
            # lists are walked with sends in between): publishing it would resurrect it
            return ()
        entry.version = version = self._stamp()
        local = self._local()
        candidates = self._round_robin.order(m for m in self._members if m not in exclude)
        backups = ()
        if candidates:
            try:
                plain = self.owner.value_to_wire(key, entry.value)
            except Exception:
                log.exception("map %s: the owner could not encode key %r; it has no backup", self.map_name, key)
                candidates = []
            for candidate in candidates:
                faulty = self._send([candidate], self._message(mm.BACKUP, key, plain, False, local, (candidate,),
                                                               version=version))
                if faulty is _UNSENDABLE:
                    break
                if not faulty:
                    backups = (candidate,)
                    break
            # the others learn where the key lives now, even with no backup found: whoever held it
            # before (a take-over's old primary) must not go on as its primary
            proxies = [m for m in self._members if m not in backups]
            self._send(proxies, self._message(mm.PROXY, key, None, False, local, backups, version=version))
        # the sends yielded: record the choice only if the entry is still ours and no newer
        # publication of it started meanwhile (its members got that one's BACKUP/PROXY last)
        if self._table.get(key) is entry and entry.is_primary and entry.version == version:
            entry.primary = local
            entry.backups = backups
        return backups

    @contextlib.contextmanager
    def _key_lock(self, key):
        """Hold the key's lock (re-entrant: a take-over publishes under it). Two publications of
        one key, or a publication and a diff, interleaving their sends would leave the primary
        sending diffs to a member that a later PROXY turned into a proxy."""
        slot = self._key_locks.get(key)
        if slot is None:
            slot = self._key_locks[key] = [gevent.lock.RLock(), 0]
        slot[1] += 1
        try:
            with slot[0]:
                yield
        finally:
            slot[1] -= 1
            if not slot[1] and self._key_locks.get(key) is slot:
                del self._key_locks[key]

    # -- sending -------------------------------------------------------------------------------------
    def _message(self, kind, key=None, value=None, diff=False, primary=None, backups=(), state=None, version=0):
        return mm.MapMessage(self.map_id, kind, key, value, diff, primary, backups, state, version)

    def _stamp(self):
        """The version of a new publication: after everything this node has heard of."""
        # saturates: a version past int64 would make every later message undecodable
        self._clock = min(self._clock + 1, mm.MAX_VERSION)
        return self._clock

    def _observe(self, version):
        if version > self._clock:
            self._clock = version

    def _send(self, members, msg):
        """Plain send with send_options. Returns {} on success, else {member: reason} of the failed
        ones (_UNSENDABLE if it could not be encoded); logs, never raises."""
        members = list(members)
        if not members:
            return {}
        self.messages_sent[msg.type] += len(members)
        try:
            self.channel.send(members, msg.to_plain(), self.send_options)
        except ChannelError as exc:
            faulty = {m: r for m, r in exc.faulty.items() if m in members} or {m: exc for m in members}
            for member, reason in faulty.items():
                self._limited.warning(("send", member), "map %s: %s%s to %s failed: %s", self.map_name,
                                      msg.type_name, "" if msg.key is None else " of %r" % (msg.key,),
                                      _name(member), reason)
            return faulty
        except (TypeError, ValueError) as exc:
            log.error("map %s: cannot encode %s of key %r: %s", self.map_name, msg.type_name, msg.key, exc)
            return _UNSENDABLE
        return {}

    def _rpc_call(self, members, msg, mode, timeout, on_faulty=None):
        """An RPC to members; if the send fails for some of them, those are reported to on_faulty
        and the others are asked once more. Raises ChannelError if that fails too."""
        members = list(members)
        plain = msg.to_plain()
        for attempt in (1, 2):
            if self._rpc is None:
                return []
            self.messages_sent[msg.type] += len(members)
            try:
                return self._rpc.send(members, plain, mode, self.send_options, timeout)
            except ChannelError as exc:
                faulty = [m for m in members if m in exc.faulty]
                if on_faulty is not None:
                    on_faulty(faulty)
                rest = [m for m in members if m not in exc.faulty]
                if attempt == 2 or not faulty or not rest:
                    raise
                log.info("map %s: %s could not reach %s (%s); asking the others again", self.map_name,
                         msg.type_name, [_name(m) for m in faulty], exc)
                members = rest
        return []

    # -- membership ----------------------------------------------------------------------------------
    def member_added(self, member):
        """A channel member arrived. It becomes a map member when its map says START or answers a
        PING, or now if its map already did so before the channel knew it (a joiner's START can
        overtake the membership event on this node)."""
        seen = self._early.pop(member, None)
        if seen is not None and _now_ms() - seen <= self.access_timeout and self.state == mm.INITIALIZED:
            self._member_alive(member)

    def member_disappeared(self, member):
        """A map member left (channel, STOP or silence): Tomcat's 5.4 decisions, carried out now."""
        self._member_memo.clear()
        local = self._local()
        if local is not None and member == local:
            return
        if self._members.pop(member, None) is not None:
            log.info("map %s: member %s left", self.map_name, _name(member))
        gone = self._table.member_gone(member, local)
        if gone.orphans:
            log.debug("map %s: dropped %d proxies that pointed only at %s", self.map_name, len(gone.orphans),
                      _name(member))
        # the owner hears of the promotions first (no sends in between): a request arriving while
        # the backups are chosen must already find those values primary here
        for entry in gone.promoted:
            self._made_primary(entry.key, entry.value)
        for entry in gone.republish + gone.promoted:
            self._publish(entry)
        if gone.republish or gone.promoted:
            log.info("map %s: after %s left, %d keys got a new backup and %d were promoted here",
                     self.map_name, _name(member), len(gone.republish), len(gone.promoted))

    def _member_alive(self, member):
        """A map of ours answered or spoke: (re)add it; a new one gives backups to entries lacking one."""
        known = self.channel.get_member(member)
        if known is None:
            log.debug("map %s: %s is not a channel member (yet); not a map member either", self.map_name,
                      _name(member))
            if len(self._early) >= _EARLY_MAX:
                self._early.clear()   # bounded: only peers that got a message through can be here
            self._early[member] = _now_ms()
            return
        local = self._local()
        if local is not None and known == local:
            return
        if known in self._members:
            self._members[known] = _now_ms()
            return
        self._members[known] = _now_ms()
        log.info("map %s: member %s added", self.map_name, known.name)
        for entry in self._table.lacking_backup():
            self._publish(entry)

    def _heard(self, member):
        if member in self._members:
            self._members[member] = _now_ms()

    # -- start ---------------------------------------------------------------------------------------
    def _init_members(self):
        members = list(self.channel.get_members())
        if not members:
            return
        msg = self._message(mm.INIT, primary=self._local())
        for response in self._rpc_call(members, msg, rpc.ALL_REPLY, self.rpc_timeout):
            reply = self._reply(response, mm.INIT)
            if reply is not None:
                self._member_alive(response.source)

    def _transfer_state(self):
        """Proxies for every key the first answering map member knows."""
        members = list(self._members)
        if not members:
            return   # nobody to ask yet: the first map member met is asked (at a ping)
        request = self._message(mm.STATE).to_plain()
        for member in members:
            if self._rpc is None:
                return
            self.messages_sent[mm.STATE] += 1
            try:
                responses = self._rpc.send([member], request, rpc.FIRST_REPLY, self.send_options, self.rpc_timeout)
            except ChannelError as exc:
                log.warning("map %s: state transfer from %s failed: %s", self.map_name, member.name, exc)
                continue
            for response in responses:
                reply = self._reply(response, mm.STATE)
                if reply is None:
                    continue
                try:
                    records = mm.state_from_plain(reply.value, self._resolve)
                except ProtocolError as exc:
                    self._drop(response.source, "STATE reply: %s" % exc)
                    continue
                for key, primary, backups, version in records:
                    self._observe(version)
                    self._table.apply_proxy(key, primary, backups, version, if_absent=True)
                self._state_transferred = True
                log.info("map %s: %d keys known from %s", self.map_name, len(records), _name(response.source))
                return
        log.warning("map %s: no map member answered the state transfer; keys put before this node "
                    "joined are unknown here until it succeeds", self.map_name)

    def _announce_start(self):
        members = list(self._members)
        if not members:
            return
        msg = self._message(mm.START, primary=self._local())
        for response in self._rpc_call(members, msg, rpc.ALL_REPLY, self.rpc_timeout):
            if self._reply(response, mm.START) is not None:
                self._member_alive(response.source)

    # -- heartbeat: ping ------------------------------------------------------------------------------
    def heartbeat(self):
        if self.state != mm.INITIALIZED or self._pinging:
            return
        self._pinging = True
        try:
            self._ping()
        except Exception:
            log.exception("map %s: ping failed", self.map_name)
        finally:
            self._pinging = False

    def _ping(self):
        members = list(self.channel.get_members())
        if members:
            msg = self._message(mm.PING, primary=self._local())
            try:
                responses = self._rpc_call(members, msg, rpc.ALL_REPLY, self.access_timeout,
                                           on_faulty=self._unreachable)
            except ChannelError as exc:
                log.warning("map %s: ping failed: %s", self.map_name, exc)
                return  # the answers of the others come as left-overs; expire nobody on a failed ping
            for response in responses:
                reply = self._reply(response, mm.PING)
                if reply is not None:
                    self._ping_answered(reply, response.source)
        now = _now_ms()
        for member, seen in list(self._members.items()):
            if now - seen > self.access_timeout:
                log.warning("map %s: member %s silent for %d ms (accessTimeout %d); treating it as gone",
                            self.map_name, member.name, now - seen, self.access_timeout)
                self.member_disappeared(member)
        if not self._state_transferred and self._members:
            self._transfer_state()

    def _unreachable(self, members):
        for member in members:
            if member in self._members:
                self.member_disappeared(member)

    def _ping_answered(self, reply, source):
        if reply.state == mm.INITIALIZED:
            self._member_alive(source)
        elif reply.state == mm.STATETRANSFERRED:
            self._heard(source)   # joining: not a member yet if it was not one
        else:
            log.debug("map %s: %s answered PING in state %s", self.map_name, _name(source),
                      mm.STATE_NAMES.get(reply.state))

    # -- ChannelListener ----------------------------------------------------------------------------
    def accept(self, msg, sender):
        return mm.peek_map_id(msg) == self.map_id

    def message_received(self, msg, sender):
        message = self._parse(msg, sender)
        if message is None:
            return
        self._heard(sender)
        handler = self._HANDLERS.get(message.type)
        if handler is None:
            self._drop(sender, "%s is not a message a lazy map sends without RPC" % message.type_name)
            return
        try:
            handler(self, message, sender)
        except (ProtocolError, ValueError) as exc:
            # the owner could not read the value or diff (malformed, refused): the peer's fault
            self._drop(sender, "%s of %r: %s" % (message.type_name, message.key, exc))
        except Exception:  # a peer's message must never fail the receiver (nor FAIL_ACK a sender)
            self.dropped += 1
            log.exception("map %s: handling %r from %s failed", self.map_name, message, _name(sender))

    def _on_start(self, msg, sender):
        self._member_alive(sender)

    def _on_stop(self, msg, sender):
        self.member_disappeared(sender)

    def _on_proxy(self, msg, sender):
        local = self._local()
        if msg.primary is not None and msg.primary == local:
            self._drop(sender, "PROXY of %r names this node as primary" % (msg.key,))
            return
        before = self._table.get(msg.key)
        if not self._news(msg, before):
            return
        held = before.value if before is not None and before.is_active else None
        self._table.apply_proxy(msg.key, msg.primary, msg.backups, msg.version)
        if held is not None:
            # another node took the key over (or put it anew): the copy held here is gone
            self._entry_removed(msg.key, held)

    def _on_backup(self, msg, sender):
        key = msg.key
        entry = self._table.get(key)
        if not self._news(msg, entry):
            return
        if msg.diff:
            if entry is None or entry.is_proxy:
                self._drop(sender, "diff for key %r, of which no copy is held here" % (key,))
                return
            value = self.owner.apply_diff(key, entry.value, msg.value, sender)
        else:
            value = self.owner.value_from_wire(key, msg.value, sender)
        self._table.apply_backup(key, value, msg.primary, msg.backups, msg.version)

    def _on_remove(self, msg, sender):
        entry = self._table.get(msg.key)
        if entry is None:
            return
        if msg.version < entry.version:
            # the key was published again since the remover last heard of it: the newer one stays
            self._stale(msg, sender)
            return
        self._table.remove(msg.key)
        if entry.is_active:
            self._entry_removed(msg.key, entry.value)

    def _news(self, msg, entry):
        """True if msg says something newer about its key than entry (else counted and ignored)."""
        if supersedes(msg.version, msg.primary, entry):
            return True
        self._stale(msg, sender=msg.primary)
        return False

    def _stale(self, msg, sender):
        self.stale += 1
        log.debug("map %s: ignoring %r from %s: the entry here is newer (%r)", self.map_name, msg,
                  _name(sender), self._table.get(msg.key))

    def _entry_removed(self, key, value):
        hook = getattr(self.owner, "entry_removed", None)
        if hook is not None:
            try:
                hook(key, value)
            except Exception:
                log.exception("map %s: entry_removed(%r) failed", self.map_name, key)

    def _on_nodes(self, msg, sender):
        if not self._news(msg, self._table.get(msg.key)):
            return
        entry = self._table.update_nodes(msg.key, msg.primary, msg.backups, self._local(), msg.version)
        if entry is not None and entry.is_active:
            hook = getattr(self.owner, "entry_accessed", None)
            if hook is not None:
                hook(msg.key, entry.value)

    _HANDLERS = {
        mm.START: _on_start,
        mm.STOP: _on_stop,
        mm.PROXY: _on_proxy,
        mm.BACKUP: _on_backup,
        mm.REMOVE: _on_remove,
        mm.ACCESS: _on_nodes,
        mm.NOTIFY_MAPMEMBER: _on_nodes,
    }

    # -- RpcCallback --------------------------------------------------------------------------------
    def reply_request(self, msg, sender):
        """Answer an RPC (INIT, START, RETRIEVE_BACKUP, STATE, PING); None is the empty answer."""
        message = self._parse(msg, sender)
        if message is None:
            return None
        self._heard(sender)
        kind = message.type
        try:
            if kind == mm.INIT:
                return self._message(mm.INIT, primary=self._local()).to_plain()
            if kind == mm.START:
                self._member_alive(sender)
                return self._message(mm.START, primary=self._local()).to_plain()
            if kind == mm.PING:
                return self._message(mm.PING, primary=self._local(), state=self.state).to_plain()
            if kind == mm.RETRIEVE_BACKUP:
                entry = self._table.get(message.key)
                if entry is None or entry.is_proxy:
                    return None
                plain = self.owner.value_to_wire(message.key, entry.value)
                return self._message(mm.RETRIEVE_BACKUP, message.key, plain, False, entry.primary,
                                     entry.backups, version=entry.version).to_plain()
            if kind == mm.STATE:
                return self._message(mm.STATE, value=mm.state_to_plain(self._table.state_records())).to_plain()
        except Exception:
            self.dropped += 1
            log.exception("map %s: answering %r from %s failed", self.map_name, message, _name(sender))
            return None
        self._drop(sender, "%s is not a request a lazy map answers" % message.type_name)
        return None

    def left_over(self, msg, sender):
        """A reply that came after its RPC stopped waiting: membership news is still news."""
        if msg is None:
            return
        message = self._parse(msg, sender)
        if message is None:
            return
        if message.type in (mm.INIT, mm.START):
            self._member_alive(sender)
        elif message.type == mm.PING:
            self._ping_answered(message, sender)

    # -- helpers --------------------------------------------------------------------------------------
    def _local(self):
        return self.channel.get_local_member(False)

    def _resolve(self, member):
        """The channel's own Member object for an identity from the wire (the local one for us)."""
        local = self._local()
        if local is not None and member == local:
            return local
        known = self.channel.get_member(member)
        return member if known is None else known

    def _parse(self, plain, sender):
        try:
            message = mm.MapMessage.from_plain(plain, self._resolve, self._member_memo)
        except ProtocolError as exc:
            self._drop(sender, "malformed map message: %s" % exc)
            return None
        if message.map_id != self.map_id:
            self._drop(sender, "%s for map %r" % (message.type_name, message.map_id))
            return None
        self.messages_received += 1
        self._observe(message.version)
        return message

    def _reply(self, response, kind):
        """An RPC response as a MapMessage of the expected type, else None (dropped if malformed)."""
        if response.message is None:
            return None
        reply = self._parse(response.message, response.source)
        if reply is None:
            return None
        if reply.type != kind:
            self._drop(response.source, "%s reply to a %s request" % (reply.type_name, mm.TYPE_NAMES[kind]))
            return None
        return reply

    def _drop(self, sender, why):
        self.dropped += 1
        self._limited.warning(("drop", sender), "map %s: dropped a message from %s: %s", self.map_name,
                              _name(sender), why)
