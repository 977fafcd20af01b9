"""The entry table of a lazy replicated map and its decisions (pure: no I/O, no clock, no greenlets).

Each key has one role on each node (Tomcat's MapEntry flags, kept as one field so impossible
combinations cannot arise):

    primary   this node holds the value and replicates it to the backup node(s)
    backup    this node holds a copy sent by the primary
    proxy     this node knows only where the key lives: its primary and backup nodes, no value
    copy      a full copy (ReplicatedMap only; the lazy map never makes one)

Each entry also has a version: the Lamport stamp of the publication that made its current layout
(map_message.py). ``supersedes`` says whether a message's news about a key is newer than the
entry held here: a higher version wins; at equal versions the same primary's later news wins, and
two different primaries (concurrent take-overs) are ordered by their identity, so every node
picks the same one.

The table applies what a message or a membership change means for the entries and returns what
is left to do on the network (publish an entry again, promote a backup); the adapter
(lazy_replicated_map.py) carries that out. Members are compared by identity (Member equality).
"""

PRIMARY = "primary"
BACKUP = "backup"
PROXY = "proxy"
COPY = "copy"


class MapEntry:
    """One key of the map as this node sees it."""

    __slots__ = ("key", "value", "primary", "backups", "role", "version")

    def __init__(self, key, value=None, primary=None, backups=(), role=PRIMARY, version=0):
        self.key = key
        self.value = value
        self.primary = primary
        self.backups = tuple(backups)
        self.role = role
        self.version = version

    @property
    def is_primary(self):
        return self.role == PRIMARY

    @property
    def is_backup(self):
        return self.role == BACKUP

    @property
    def is_proxy(self):
        return self.role == PROXY

    @property
    def is_copy(self):
        return self.role == COPY

    @property
    def is_active(self):
        """Holds a value here (Tomcat's isActive: anything but a proxy)."""
        return self.role != PROXY

    def __repr__(self):
        return "MapEntry(%r, %s, v%d, primary=%s, backups=%s)" % (
            self.key, self.role, self.version, getattr(self.primary, "name", None),
            [getattr(b, "name", b) for b in self.backups])


def member_rank(member):
    """A total order on members (None lowest), the same on every node: breaks version ties."""
    if member is None:
        return (b"", -1, b"")
    return (member.host or b"", member.port, member.unique_id)


def supersedes(version, primary, entry):
    """Is news stamped ``version`` from ``primary`` about a key newer than ``entry`` (None: nothing
    known)? A higher version wins; at equal versions the same primary's news applies (its ACCESS
    and diffs carry the version of its publication) and between two primaries the higher rank."""
    if entry is None or version > entry.version:
        return True
    if version < entry.version:
        return False
    if entry.primary is not None and primary == entry.primary:
        return True
    return member_rank(primary) > member_rank(entry.primary)


class RoundRobin:
    """Backup choice: each publication starts one member further along the map members
    (Tomcat's getNextBackupIndex), then tries the following ones if a send fails."""

    def __init__(self):
        self.position = 0

    def order(self, members):
        members = list(members)
        if not members:
            return []
        start = self.position % len(members)
        self.position = start + 1
        return members[start:] + members[:start]


class MemberGone:
    """What a vanished map member leaves to do: entries to publish again (this node is their
    primary and lost its backup) and entries just promoted from backup to primary (publish, then
    tell the owner); ``orphans`` are the keys dropped (proxies that pointed only at it)."""

    __slots__ = ("republish", "promoted", "orphans")

    def __init__(self):
        self.republish = []
        self.promoted = []
        self.orphans = []


class EntryTable:
    """key -> MapEntry, with Tomcat's rules for each message and membership change."""

    def __init__(self):
        self._entries = {}

    def get(self, key):
        return self._entries.get(key)

    def __contains__(self, key):
        return key in self._entries

    def __len__(self):
        return len(self._entries)

    def entries(self):
        """A snapshot: callers yield (send) while they walk it."""
        return list(self._entries.values())

    def keys(self, full=False):
        if full:
            return list(self._entries)
        return [k for k, e in self._entries.items() if e.role != PROXY]

    def size(self, full=False):
        if full:
            return len(self._entries)
        return sum(1 for e in self._entries.values() if e.role != PROXY)

    def clear(self):
        self._entries.clear()

    def remove(self, key):
        return self._entries.pop(key, None)

    # -- local operations ----------------------------------------------------------------------
    def put_primary(self, key, value, local):
        """A put here: a new entry, primary on this node, no backup yet (the publication gives one
        and a new version)."""
        old = self._entries.get(key)
        entry = self._entries[key] = MapEntry(key, value, local, (), PRIMARY, old.version if old else 0)
        return entry

    @staticmethod
    def make_primary(entry, local, value=None, backups=None, version=None):
        """This node takes over the entry (a get on a backup or proxy, or a promotion)."""
        if value is not None:
            entry.value = value
        entry.role = PRIMARY
        entry.primary = local
        if backups is not None:
            entry.backups = tuple(backups)
        if version is not None:
            entry.version = version

    # -- what peers' messages mean -------------------------------------------------------------
    def apply_proxy(self, key, primary, backups, version=0, if_absent=False):
        """PROXY: the key lives elsewhere; a value held here is dropped. ``if_absent`` (state
        transfer) leaves an entry alone that a newer message already made. The caller checked
        ``supersedes``."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = MapEntry(key, None, primary, backups, PROXY, version)
            return entry
        if if_absent:
            return entry
        entry.role = PROXY
        entry.value = None
        entry.primary = primary
        entry.backups = tuple(backups)
        entry.version = version
        return entry

    def apply_backup(self, key, value, primary, backups, version=0):
        """BACKUP: hold ``value`` (already decoded or diffed by the owner) as the backup copy."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = MapEntry(key, value, primary, backups, BACKUP, version)
            return entry
        entry.role = BACKUP
        entry.value = value
        entry.primary = primary
        entry.backups = tuple(backups)
        entry.version = version
        return entry

    def update_nodes(self, key, primary, backups, local, version=None):
        """ACCESS / NOTIFY_MAPMEMBER: the primary (or the node that became primary) says where the
        key lives now. A node that still thought itself primary but is now named as a backup
        steps down to backup (two primaries would both replicate). Returns the entry or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        entry.primary = primary
        entry.backups = tuple(backups)
        if version is not None:
            entry.version = version
        if entry.role == PRIMARY and primary is not None and primary != local and local in entry.backups:
            entry.role = BACKUP
        return entry

    def state_records(self):
        """(key, primary, backups, version) of every entry that says where its key lives: a STATE reply."""
        return [(e.key, e.primary, e.backups, e.version) for e in self._entries.values()
                if e.primary is not None or e.backups]

    # -- membership ----------------------------------------------------------------------------
    def lacking_backup(self):
        """Primary entries without a backup: a new map member gives them one."""
        return [e for e in self._entries.values() if e.role == PRIMARY and not e.backups]

    def member_gone(self, lost, local):
        """Tomcat's memberDisappeared, on the table (docs: tomcat-cluster.md 5.4):

        * this node is primary and ``lost`` was a backup -> publish again (``republish``);
        * ``lost`` was the primary -> primary := None;
        * then a proxy with no primary and no backup but ``lost`` -> dropped (``orphans``);
        * a backup with no primary whose backup node is this node -> promoted here: primary,
          no backups yet (``promoted``: publish it and tell the owner).
        """
        result = MemberGone()
        for key, entry in list(self._entries.items()):
            if entry.role == PRIMARY and lost in entry.backups:
                entry.backups = tuple(b for b in entry.backups if b != lost)
                result.republish.append(entry)
                continue
            if entry.primary is not None and entry.primary == lost:
                entry.primary = None
            if entry.primary is not None:
                continue
            if entry.role == PROXY and all(b == lost for b in entry.backups):
                # nobody left who holds the value (an empty proxy is useless as well)
                del self._entries[key]
                result.orphans.append(key)
            elif entry.role == BACKUP and local in entry.backups:
                entry.role = PRIMARY
                entry.primary = local
                entry.backups = ()
                result.promoted.append(entry)
        return result
