"""The farm's messages: what FarmWarDeployers send each other, as plain codec values (pure code).

Every farm message is the body of a ClusterMessage of kind ``"farm"`` (ha/cluster_message.py): a
flat list read by position, version first, then the operation, then its fields:

    [1, "chunk", transfer, war, size, sha256, stamp, origin, offset, data]
        one slice of a WAR (Tomcat's FileMessage). ``transfer``: the sender's id of this transfer
        (1..64 chars); ``war``: the file name (``app##2.war``); ``size``: the whole file's bytes;
        ``sha256``: the whole file's digest (32 bytes), in every chunk, so the receiver checks the
        finished file before it deploys anything; ``stamp``: the farm version of this WAR (see
        farm_state.py) and ``origin`` the node that published it (a catch-up relays a WAR another
        node published); ``offset``: where ``data`` starts in the file.
    [1, "abort", transfer, reason]
        the receiver gave the transfer up (refused, corrupted, too large): the sender stops
        sending it to that member.
    [1, "undeploy", war, stamp]
        the WAR left the farm (Tomcat's UndeployMessage); ``stamp`` is the removal's version, its
        origin the sending member.
    [1, "inventory?", request]
        what do you hold? (a joining node's catch-up, ``pycat farm list``)
    [1, "inventory", request, entries]
        the answer: a list of ``[war, size, sha256, stamp, origin, removed, running]``.
    [1, "fetch", request, war, sha256]
        send me this WAR (the answer is an ordinary transfer, to the asker only).

Every field is checked here, and a WAR name from a peer is hostile input: ``check_war_name``
takes only one plain file name ending in ``.war`` (no separator, no ``..``, no NUL, nothing
hidden), and ``decode(body, name_check)`` also passes each name to ``name_check``: the deployer
gives war.parse_context_name's rule (the one check of a context name), which this module does not
import so that it stays pure (tests/test_layers.py: no socket, no gevent). A message that fails a
check raises ProtocolError; the deployer drops it with a log line.
"""
import collections

from pycat.errors import DeployError, ProtocolError

KIND = "farm"
VERSION = 1
MAX_ID = 64
MAX_NAME = 255
MAX_REASON = 500
MAX_ENTRIES = 10000
MAX_CHUNK = 8 * 1024 * 1024          # well under the codec's 16 MB frame limit
SHA_BYTES = 32

Chunk = collections.namedtuple("Chunk", "transfer war size sha256 stamp origin offset data")
Abort = collections.namedtuple("Abort", "transfer reason")
Undeploy = collections.namedtuple("Undeploy", "war stamp")
InventoryRequest = collections.namedtuple("InventoryRequest", "request")
Entry = collections.namedtuple("Entry", "war size sha256 stamp origin removed running")
Inventory = collections.namedtuple("Inventory", "request entries")
Fetch = collections.namedtuple("Fetch", "request war sha256")

_OPS = {Chunk: "chunk", Abort: "abort", Undeploy: "undeploy", InventoryRequest: "inventory?",
        Inventory: "inventory", Fetch: "fetch"}
_BY_NAME = {name: cls for cls, name in _OPS.items()}


def check_war_name(name):
    """``name`` if it can be a farmed WAR's file name, else ProtocolError saying why."""
    if type(name) is not str or not 5 <= len(name) <= MAX_NAME:
        raise ProtocolError("a WAR name must be a str of 5..%d characters" % MAX_NAME)
    if not name.endswith(".war"):
        raise ProtocolError("WAR name %r does not end with .war" % name[:80])
    if "/" in name or "\\" in name or "\x00" in name or name.startswith(".") or ".." in name:
        raise ProtocolError("WAR name %r is not one plain file name" % name[:80])
    return name


def _id(value, what):
    if type(value) is not str or not 1 <= len(value) <= MAX_ID or not value.isprintable():
        raise ProtocolError("%s must be 1..%d printable characters" % (what, MAX_ID))
    return value


def _count(value, what, low=0):
    if type(value) is not int or value < low or value >= 1 << 62:
        raise ProtocolError("%s must be an int >= %d" % (what, low))
    return value


def _sha(value):
    if type(value) is not bytes or len(value) != SHA_BYTES:
        raise ProtocolError("sha256 must be %d bytes" % SHA_BYTES)
    return value


def _origin(value):
    if type(value) is not str or len(value) > MAX_NAME:
        raise ProtocolError("origin must be a str of at most %d characters" % MAX_NAME)
    return value


def _bool(value, what):
    if type(value) is not bool:
        raise ProtocolError("%s must be a bool" % what)
    return value


def _entry(item, war_name):
    if type(item) is not list or len(item) != 7:
        raise ProtocolError("an inventory entry is a list of 7 fields")
    war, size, sha, stamp, origin, removed, running = item
    return Entry(war_name(war), _count(size, "size"), _sha(sha), _count(stamp, "stamp"), _origin(origin),
                 _bool(removed, "removed"), _bool(running, "running"))


def encode(message):
    """The codec value (a list) of a farm message."""
    op = _OPS[type(message)]
    if type(message) is Inventory:
        return [VERSION, op, message.request, [list(e) for e in message.entries]]
    return [VERSION, op] + list(message)


def decode(body, name_check=None):
    """The farm message a ClusterMessage body holds; ProtocolError when anything is off.
    ``name_check(war)`` (raising DeployError or ProtocolError) is applied to every WAR name."""
    def war_name(name):
        check_war_name(name)
        if name_check is not None:
            try:
                name_check(name)
            except DeployError as exc:
                raise ProtocolError(str(exc)) from None
        return name

    if type(body) is not list or len(body) < 2:
        raise ProtocolError("a farm message is a list [version, op, ...]")
    if type(body[0]) is not int or body[0] != VERSION:
        raise ProtocolError("unsupported farm message version %r" % (body[0],))
    cls = _BY_NAME.get(body[1]) if type(body[1]) is str else None
    if cls is None:
        raise ProtocolError("unknown farm operation %r" % (body[1],))
    fields = body[2:]
    if len(fields) != len(cls._fields):
        raise ProtocolError("farm %s has %d fields, not %d" % (body[1], len(fields), len(cls._fields)))
    if cls is Chunk:
        transfer, war, size, sha, stamp, origin, offset, data = fields
        if type(data) is not bytes or len(data) > MAX_CHUNK:
            raise ProtocolError("chunk data must be at most %d bytes" % MAX_CHUNK)
        size, offset = _count(size, "size"), _count(offset, "offset")
        if offset + len(data) > size:
            raise ProtocolError("chunk [%d, +%d) runs past the file's %d bytes" % (offset, len(data), size))
        return Chunk(_id(transfer, "transfer id"), war_name(war), size, _sha(sha),
                     _count(stamp, "stamp"), _origin(origin), offset, data)
    if cls is Abort:
        transfer, reason = fields
        if type(reason) is not str:
            raise ProtocolError("abort reason must be a str")
        return Abort(_id(transfer, "transfer id"), reason[:MAX_REASON])
    if cls is Undeploy:
        war, stamp = fields
        return Undeploy(war_name(war), _count(stamp, "stamp"))
    if cls is InventoryRequest:
        return InventoryRequest(_id(fields[0], "request id"))
    if cls is Inventory:
        request, entries = fields
        if type(entries) is not list or len(entries) > MAX_ENTRIES:
            raise ProtocolError("inventory entries must be a list of at most %d" % MAX_ENTRIES)
        return Inventory(_id(request, "request id"), [_entry(e, war_name) for e in entries])
    request, war, sha = fields
    return Fetch(_id(request, "request id"), war_name(war), _sha(sha))
