"""MapMessage: what replicated maps say to each other (Tomcat's AbstractReplicatedMap.MapMessage).

Pure: no I/O. A map message rides the channel as one flat tuple of pycat's codec
(pycat/tribes/io/codec.py), never Java serialization or pickle; as an RPC request or reply it is
the ``message`` of an RpcMessage whose rpc_id is the map id. Eleven fields, in this order:

    ("__pycat_map__",  envelope tag: tells a map message from the other values on the channel
     1,                envelope version (an int; any other is rejected)
     map_id,           bytes (1..2048): the map's name in ISO-8859-1; a map takes only its own
     type,             int: one of the codes below (Tomcat's)
     key,              str | bytes | int (int64) | None; at most 4096 characters or bytes.
                       Required by BACKUP, RETRIEVE_BACKUP, PROXY, REMOVE, COPY, ACCESS and
                       NOTIFY_MAPMEMBER; None in every other type
     value,            any codec value: the owner's full copy, a diff (diff=True), the STATE
                       payload (below), or None
     diff,             bool: value is a diff for the copy held by the receiver (BACKUP, COPY)
     primary,          member | None: the node holding the primary copy
     backups,          tuple of at most 16 members: the nodes holding a backup copy
     version,          int (0..2**63-1): the entry's version (below); 0 where no entry is meant
     state)            int | None: the answering map's state, in PING messages only

    member := (host bytes (4 or 16), TCP port (0..65535), unique id bytes (16))

Versions (pycat's addition to Tomcat's message): each map keeps a Lamport clock, raised to every
version it receives; whenever a node (re)publishes an entry (put, take-over, promotion, new backup)
it stamps the entry with clock + 1. A receiver ignores news about a key older than what it holds
(map_state.supersedes), so two nodes taking one key over at once end with one primary, whatever
order their messages arrive in; Tomcat lets the last message win.

A member travels as its identity only (Tomcat's Member equality: host, port, unique id). The
decoder turns each into a Member and hands it to an optional ``resolve`` callable, which the map
uses to swap in the channel's own Member object when the channel knows it.

A STATE reply's value lists every entry the answering map knows, as proxies for the joiner. The
member identities are written once and the rows refer to them by index:

    (members: tuple of member,
     rows: tuple of (key, primary index or -1, tuple of backup indices, version))

Message types (BACKUP=1 ... PING=13 as Tomcat numbers them): COPY and STATE_COPY belong to the full
ReplicatedMap and are recognised but never sent by the lazy map.

``from_plain`` validates every field and raises ProtocolError naming the field that is wrong;
``to_plain`` produces exactly what ``from_plain`` accepts.
"""
from pycat.errors import ProtocolError
from pycat.tribes.member import Member

TAG = "__pycat_map__"
VERSION = 1
FIELDS = 11
MAX_MEMO = 256          # member identities remembered by a decoder's memo (then it starts again)

BACKUP = 1
RETRIEVE_BACKUP = 2
PROXY = 3
REMOVE = 4
STATE = 5
START = 6
STOP = 7
INIT = 8
COPY = 9
STATE_COPY = 10
ACCESS = 11
NOTIFY_MAPMEMBER = 12
PING = 13

TYPE_NAMES = {
    BACKUP: "BACKUP", RETRIEVE_BACKUP: "RETRIEVE_BACKUP", PROXY: "PROXY", REMOVE: "REMOVE",
    STATE: "STATE", START: "START", STOP: "STOP", INIT: "INIT", COPY: "COPY",
    STATE_COPY: "STATE_COPY", ACCESS: "ACCESS", NOTIFY_MAPMEMBER: "NOTIFY_MAPMEMBER", PING: "PING",
}
#: the types that name an entry
KEYED = frozenset((BACKUP, RETRIEVE_BACKUP, PROXY, REMOVE, COPY, ACCESS, NOTIFY_MAPMEMBER))

# a map's life (Tomcat's AbstractReplicatedMap.State); PING replies carry it
NEW = 0
STATETRANSFERRED = 1
INITIALIZED = 2
DESTROYED = 3
STATE_NAMES = {NEW: "NEW", STATETRANSFERRED: "STATETRANSFERRED", INITIALIZED: "INITIALIZED",
               DESTROYED: "DESTROYED"}

# bounds on what a peer can make us hold per message (session ids and map names are far shorter)
MAX_MAP_ID = 2048
MAX_KEY = 4096
MAX_BACKUPS = 16
MAX_STATE_MEMBERS = 4096
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
MAX_VERSION = _INT64_MAX


def check_key(key):
    """Raise TypeError/ValueError unless key is a map key (str, bytes or int64, bounded)."""
    _key_problem(key, TypeError, ValueError)
    return key


def _key_problem(key, type_error, value_error):
    kind = type(key)
    if kind is str or kind is bytes:
        if len(key) > MAX_KEY:
            raise value_error("key of %d characters or bytes (at most %d)" % (len(key), MAX_KEY))
    elif kind is int:
        if not _INT64_MIN <= key <= _INT64_MAX:
            raise value_error("int key outside int64")
    else:
        raise type_error("a key is str, bytes or int, not %s" % kind.__name__)


def member_to_plain(member):
    return (member.host, member.port, member.unique_id)


def member_from_plain(plain, what="member", resolve=None, memo=None):
    """(host, port, unique id) -> Member (resolved when a resolver is given); ProtocolError if wrong.
    ``memo``: a dict the caller keeps, identity -> the member ``resolve`` swapped in (building a
    Member costs more than the rest of a message's checks; members are few)."""
    if type(plain) not in (tuple, list) or len(plain) != 3:
        raise ProtocolError("%s is not a (host, port, unique id) triple: %s" % (what, _describe(plain)))
    host, port, uid = plain
    if type(host) is not bytes or len(host) not in (4, 16):
        raise ProtocolError("%s host must be 4 or 16 bytes, not %s" % (what, _describe(host)))
    if type(port) is not int or not 0 <= port <= 65535:
        raise ProtocolError("%s port must be an int in 0..65535, not %s" % (what, _describe(port)))
    if type(uid) is not bytes or len(uid) != 16:
        raise ProtocolError("%s unique id must be 16 bytes, not %s" % (what, _describe(uid)))
    if memo is not None:
        known = memo.get((host, port, uid))
        if known is not None:
            return known
    member = Member(host, port, unique_id=uid)
    if resolve is not None:
        resolved = resolve(member)
        if memo is not None and resolved is not member:
            if len(memo) >= MAX_MEMO:
                memo.clear()
            memo[(host, port, uid)] = resolved
        member = resolved
    return member


def _describe(value):
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return "%s %s" % (type(value).__name__, text)


class MapMessage:
    """One map message; see the module docstring for the fields."""

    __slots__ = ("map_id", "type", "key", "value", "diff", "primary", "backups", "state", "version")

    def __init__(self, map_id, type, key=None, value=None, diff=False, primary=None, backups=(),
                 state=None, version=0):
        self.map_id = map_id
        self.type = type
        self.key = key
        self.value = value
        self.diff = diff
        self.primary = primary
        self.backups = tuple(backups)
        self.state = state
        self.version = version

    @property
    def type_name(self):
        return TYPE_NAMES.get(self.type, str(self.type))

    def __repr__(self):
        return "MapMessage(%s, map=%r, key=%r, v%d, diff=%s, primary=%s, backups=%s%s)" % (
            self.type_name, self.map_id, self.key, self.version, self.diff,
            getattr(self.primary, "name", None), [getattr(b, "name", b) for b in self.backups],
            "" if self.state is None else ", state=%s" % STATE_NAMES.get(self.state, self.state))

    # -- wire form ---------------------------------------------------------------------------
    def to_plain(self):
        return (TAG, VERSION, self.map_id, self.type, self.key, self.value, self.diff,
                None if self.primary is None else member_to_plain(self.primary),
                tuple(member_to_plain(b) for b in self.backups), self.version, self.state)

    @classmethod
    def from_plain(cls, plain, resolve=None, memo=None):
        """Validate and decode a received value; ProtocolError naming the first wrong field."""
        if type(plain) not in (tuple, list):
            raise ProtocolError("a map message is a tuple, not %s" % _describe(plain))
        if len(plain) != FIELDS:
            raise ProtocolError("a map message has %d fields, not %d" % (FIELDS, len(plain)))
        tag, version, map_id, kind, key, value, diff, primary, backups, entry_version, state = plain
        if tag != TAG:
            raise ProtocolError("map message tag is %s, not %r" % (_describe(tag), TAG))
        if type(version) is not int or version != VERSION:
            raise ProtocolError("unsupported map message version %s" % _describe(version))
        if type(map_id) is not bytes or not 0 < len(map_id) <= MAX_MAP_ID:
            raise ProtocolError("map id must be 1..%d bytes, not %s" % (MAX_MAP_ID, _describe(map_id)))
        if type(kind) is not int or kind not in TYPE_NAMES:
            raise ProtocolError("unknown map message type %s" % _describe(kind))
        name = TYPE_NAMES[kind]
        if kind in KEYED:
            if key is None:
                raise ProtocolError("%s message without a key" % name)
            _key_problem(key, _protocol_error("%s key" % name), _protocol_error("%s key" % name))
        elif key is not None:
            raise ProtocolError("%s message carries a key (%s)" % (name, _describe(key)))
        if type(diff) is not bool:
            raise ProtocolError("diff flag must be a bool, not %s" % _describe(diff))
        if diff and kind not in (BACKUP, COPY):
            raise ProtocolError("%s message marked as a diff" % name)
        if primary is not None:
            primary = member_from_plain(primary, "primary member", resolve, memo)
        if type(backups) not in (tuple, list):
            raise ProtocolError("backup members must be a tuple, not %s" % _describe(backups))
        if len(backups) > MAX_BACKUPS:
            raise ProtocolError("%d backup members (at most %d)" % (len(backups), MAX_BACKUPS))
        backups = tuple(member_from_plain(b, "backup member %d" % i, resolve, memo) for i, b in enumerate(backups))
        _check_version(entry_version, "%s version" % name)
        if state is not None:
            if kind != PING:
                raise ProtocolError("%s message carries a map state" % name)
            if type(state) is not int or state not in STATE_NAMES:
                raise ProtocolError("unknown map state %s" % _describe(state))
        return cls(map_id, kind, key, value, diff, primary, backups, state, entry_version)


def _check_version(value, what):
    if type(value) is not int or not 0 <= value <= MAX_VERSION:
        raise ProtocolError("%s must be an int in 0..2**63-1, not %s" % (what, _describe(value)))


def _protocol_error(prefix):
    def make(text):
        return ProtocolError("%s: %s" % (prefix, text))
    return make


def peek_map_id(plain):
    """The map id of something shaped like a map message envelope, else None (cheap: for accept())."""
    if type(plain) in (tuple, list) and len(plain) > 2 and plain[0] == TAG:
        map_id = plain[2]
        if type(map_id) is bytes:
            return map_id
    return None


# -- the STATE reply's payload --------------------------------------------------------------------
def state_to_plain(records):
    """[(key, primary or None, backups, version)] -> (members, rows), each member identity written once."""
    index = {}
    members = []

    def ref(member):
        i = index.get(member)
        if i is None:
            i = index[member] = len(members)
            members.append(member_to_plain(member))
        return i

    rows = tuple((key, -1 if primary is None else ref(primary), tuple(ref(b) for b in backups), version)
                 for key, primary, backups, version in records)
    return (tuple(members), rows)


def state_from_plain(value, resolve=None):
    """(members, rows) -> [(key, primary or None, backups tuple, version)]; ProtocolError if anything
    is wrong."""
    if type(value) not in (tuple, list) or len(value) != 2:
        raise ProtocolError("a STATE payload is a (members, rows) pair, not %s" % _describe(value))
    plain_members, rows = value
    if type(plain_members) not in (tuple, list) or type(rows) not in (tuple, list):
        raise ProtocolError("STATE members and rows must be tuples")
    if len(plain_members) > MAX_STATE_MEMBERS:
        raise ProtocolError("STATE payload names %d members (at most %d)" % (len(plain_members), MAX_STATE_MEMBERS))
    members = [member_from_plain(m, "STATE member %d" % i, resolve) for i, m in enumerate(plain_members)]
    count = len(members)
    out = []
    for n, row in enumerate(rows):
        what = "STATE row %d" % n
        if type(row) not in (tuple, list) or len(row) != 4:
            raise ProtocolError("%s is not a (key, primary, backups, version) row: %s" % (what, _describe(row)))
        key, primary, backups, version = row
        if key is None:
            raise ProtocolError("%s has no key" % what)
        _key_problem(key, _protocol_error(what + " key"), _protocol_error(what + " key"))
        if type(primary) is not int or not -1 <= primary < count:
            raise ProtocolError("%s primary index %s is not in -1..%d" % (what, _describe(primary), count - 1))
        if type(backups) not in (tuple, list) or len(backups) > MAX_BACKUPS:
            raise ProtocolError("%s backups must be a tuple of at most %d indices" % (what, MAX_BACKUPS))
        for b in backups:
            if type(b) is not int or not 0 <= b < count:
                raise ProtocolError("%s backup index %s is not in 0..%d" % (what, _describe(b), count - 1))
        _check_version(version, what + " version")
        out.append((key, None if primary < 0 else members[primary], tuple(members[b] for b in backups), version))
    return out
