"""DeltaSession: a session whose changes replicate, and the rules every replica applies them by.

A DeltaSession is a Session plus what replication needs (Tomcat's DeltaSession):

* ``tracker``: while a request uses the session, a DeltaTracker (pycat.ha.session.tracker) is its
  ``observer`` and records the request's writes, removals and values changed in place. The manager
  starts it on ``access()`` and turns it into one DeltaRequest at the end of the request.
* ``clock`` and ``versions``: a per-session Lamport counter and the version ``(counter, writer)``
  of every key (an attribute name, or one of the field codes MAX_INACTIVE / PRINCIPAL /
  AUTH_TYPE). A local change sent at the end of a request gets ``(clock + 1, this node)``; a
  received change is applied to a key only if its version is greater than the key's (last writer
  wins, ties broken by the writer's name). So when two nodes write one session at once, every
  replica ends with the same value for every key, whatever order the messages arrive in; a message
  delivered twice changes nothing the second time. Removed attributes keep their version (a
  tombstone), so an older SET arriving late cannot bring them back.
* ``is_primary``: this node served the session's last request. A replica that is not primary
  expires an idle session only at twice its interval, and silently (the primary tells everyone
  when it expires); Tomcat's rule.

``apply(delta, ...)`` and the record functions are pure: no I/O, no greenlets. The manager calls
them from the channel's receiving greenlet.
"""
import logging
import math
import struct

from pycat.errors import ProtocolError
from pycat.ha.session import attr_values
from pycat.ha.session import delta as d
from pycat.session.session import Session
from pycat.tribes.io import codec

log = logging.getLogger(__name__)

_NONE = (-1, "")        # the version of a key nobody wrote


def principal_object(value):
    """A replicated principal ((name, roles) or None) as the object sessions hold."""
    if value is None:
        return None
    from pycat.realm.realms import GenericPrincipal
    return GenericPrincipal(value[0], value[1])


def principal_key(principal):
    """What travels for a session's principal: None or (name, sorted roles)."""
    return d._principal(principal)


class DeltaSession(Session):
    __slots__ = ("clock", "versions", "tracker", "fields", "last_replicated")

    def __init__(self, manager):
        super().__init__(manager)
        self.clock = 0
        self.versions = None          # key -> (counter, writer); a dict once a key has a version
        self.tracker = None           # the DeltaTracker of the requests using the session now
        self.fields = None            # (max_inactive, principal, auth_type) when tracking began
        self.last_replicated = 0.0    # when this node last sent a message about the session

    def fill(self, sid, creation_time, last_accessed_time, now, interval, principal, auth_type, clock, versions,
             attributes):
        """Become a valid backup copy with this state (a record of the state transfer; the caller
        adds it to its manager). Its idle clock starts now, as Tomcat's copies do on arrival."""
        self.id = sid
        self._valid = True
        self.is_new = False
        self.is_primary = False
        self.creation_time = creation_time
        self.last_accessed_time = last_accessed_time
        self.this_accessed_time = now
        self.max_inactive_interval = interval
        self.principal = principal
        self.auth_type = auth_type
        self.clock = clock
        self.versions = versions or None
        self._attributes = attributes

    # -- local use ---------------------------------------------------------------------------
    def access(self):
        super().access()
        if self.tracker is None:
            self.manager.begin_tracking(self)

    @property
    def is_valid(self):
        if not self._valid:
            return False
        if self._expiring:
            return True
        interval = self.max_inactive_interval
        if interval > 0:
            idle = self.idle_time()
            if self.is_primary:
                if idle >= interval:
                    self.expire(True)
            elif idle >= 2 * interval:
                # a backup copy outlived its primary's silence: drop it here only
                self.expire(True, notify_cluster=False)
        return self._valid

    def expire(self, notify=True, notify_cluster=True):
        """Destroy the session here, and (``notify_cluster``) on every other node."""
        if not self._valid or self._expiring:
            return
        session_id = self.id
        self.tracker = None
        self.observer = None
        super().expire(notify)
        if notify_cluster and not self._valid:
            self.manager.session_expired(self, session_id)

    def version_of(self, key):
        versions = self.versions
        return versions.get(key, _NONE) if versions else _NONE

    def stamp(self, keys, version):
        """Record ``version`` as the version of each key (a local change being sent)."""
        versions = self.versions
        if versions is None:
            versions = self.versions = {}
        for key in keys:
            versions[key] = version

    # -- replicated changes -------------------------------------------------------------------
    def apply(self, delta, resolve, notify, start=0):
        """Apply a received DeltaRequest's actions from ``start`` under last-writer-wins.

        ``resolve(name, value)``: the attribute value to store (a Blob loaded or refused: a
        ValueRefused skips that attribute); ``notify``: fire attribute listeners and binding hooks.
        Returns the index of the first action not applied: len(actions), or the index of a
        CHANGE_ID (the manager renames the session, then calls again from the next action) or of
        the final INVALIDATE/EXPIRE (the manager ends the session); and a list of (name, reason)
        for the values refused."""
        version = delta.version
        if version[0] > self.clock:
            self.clock = version[0]
        tracker = self.tracker
        refused = []
        actions = delta.actions
        for index in range(start, len(actions)):
            action = actions[index]
            code = action[0]
            if code == d.SET or code == d.REMOVE:
                name = action[1]
                if version <= self.version_of(name):
                    continue
                self.stamp((name,), version)
                if tracker is not None:
                    tracker.forget(name)      # a later write than this request's pending one
                if code == d.REMOVE:
                    if name in self._attributes:
                        self.remove_attribute(name, notify, track=False)
                    continue
                try:
                    value = resolve(name, action[2])
                except attr_values.values.ValueRefused as exc:
                    refused.append((name, exc))
                    continue
                self.set_attribute(name, value, notify, track=False)
            elif code == d.ACCESS:
                when = action[1]
                if when > self.last_accessed_time:
                    self.last_accessed_time = when
                if when > self.this_accessed_time:
                    self.this_accessed_time = when
            elif code == d.CREATE:
                # the interval at creation, unless a versioned change (maybe in this very delta,
                # which then follows) says otherwise
                if self.version_of(d.MAX_INACTIVE) == _NONE:
                    self.max_inactive_interval = action[1]
                if action[2] < self.creation_time:
                    self.creation_time = action[2]
            elif code == d.MAX_INACTIVE:
                if version > self.version_of(d.MAX_INACTIVE):
                    self.max_inactive_interval = action[1]
                    self.stamp((d.MAX_INACTIVE,), version)
            elif code == d.PRINCIPAL:
                if version > self.version_of(d.PRINCIPAL):
                    self.principal = principal_object(action[1])
                    self.stamp((d.PRINCIPAL,), version)
            elif code == d.AUTH_TYPE:
                if version > self.version_of(d.AUTH_TYPE):
                    self.auth_type = action[1]
                    self.stamp((d.AUTH_TYPE,), version)
            else:       # CHANGE_ID, INVALIDATE, EXPIRE: the manager's business
                return index, refused
        return len(actions), refused


# -- whole-session records (state transfer) ----------------------------------------------------
#
# [id, creation_time, last_accessed_time, max_inactive, principal, auth_type, clock,
#  [[name, encoded value], ...], [[key, counter, writer], ...]]
#
# key: an attribute name (str) or a field code (int). A version whose key names no attribute and no
# field is a tombstone. Times are float seconds, principal None or [name, [roles]].

RECORD_FIELDS = 9
MAX_VERSIONS = 65536


def to_record(session, encode):
    """The plain record of ``session``; ``encode(name, value)`` gives an attribute's wire form, or
    delta.SKIP to leave it out."""
    attrs = []
    for name, value in list(session.raw_attributes().items()):
        wire = encode(name, value)
        if wire is not d.SKIP:
            attrs.append([name, wire])
    principal = principal_key(session.principal)
    versions = session.versions
    return [session.id, float(session.creation_time), float(session.last_accessed_time),
            int(session.max_inactive_interval),
            None if principal is None else [principal[0], list(principal[1])],
            session.auth_type, session.clock, attrs,
            [[k, v[0], v[1]] for k, v in versions.items()] if versions else []]



_RECORD_HEAD = bytes((codec.VERSION,)) + struct.pack(">BI", codec.LIST, RECORD_FIELDS)
_pack_tu = struct.Struct(">BI").pack
_pack_times = struct.Struct(">BdBdBq").pack          # creation time, last accessed time, interval
_ATTR_HEAD = _pack_tu(codec.LIST, 2)
_VERSION_HEAD = _pack_tu(codec.LIST, 3)
_NO_PRINCIPAL = bytes((codec.NONE, codec.NONE))
_EMPTY_LIST = _pack_tu(codec.LIST, 0)


def record_bytes(session, write):
    """``codec.dumps(to_record(session, encode))`` in one pass (the state transfer's sender):
    ``write(out, name, value)`` appends an attribute's wire form to the bytearray ``out`` and
    answers True, or leaves ``out`` as it was and answers False to leave the attribute out
    (``ClusterManagerBase.value_writer``). A writer whose ``every_name`` is true lets every name
    replicate: plain values are then written here and ``write`` is called for the others only.
    The same bytes as the two-step form (tests compare).

    The record is built as a list of bytes joined once (codec.py says why); the sender pays this
    for every session it sends, so the common cases are written inline."""
    str_get, new_str = _str_memo.get, _new_str_item
    int_get, int_item = _int_items.get, codec.int_item
    sid = session.id
    parts = [_RECORD_HEAD, str_get(sid) or new_str(sid),
             _pack_times(codec.FLOAT, float(session.creation_time), codec.FLOAT, float(session.last_accessed_time),
                         codec.INT, int(session.max_inactive_interval))]
    principal = session.principal
    if principal is None and session.auth_type is None:
        parts.append(_NO_PRINCIPAL)
    else:
        principal = principal_key(principal)
        codec.dump_parts(None if principal is None else [principal[0], list(principal[1])], parts)
        codec.dump_parts(session.auth_type, parts)
    clock = session.clock
    parts.append(int_get(clock) or int_item(clock) if type(clock) is int else codec.dumps(clock)[1:])
    count_at = len(parts)
    parts.append(_EMPTY_LIST)
    count = 0
    plain = _write_plain if getattr(write, "every_name", False) else None
    depth, not_plain = attr_values.MAX_DEPTH, attr_values.NotPlain
    # no copy of the items: nothing in this loop yields to another greenlet
    for name, value in session.raw_attributes().items():
        mark = len(parts)
        parts.append(_ATTR_HEAD)
        parts.append(str_get(name) or new_str(name))
        if plain is not None:
            if type(value) is str:
                parts.append(str_get(value) or new_str(value))
                count += 1
                continue
            try:
                plain(value, parts, depth)
                count += 1
                continue
            except not_plain:
                del parts[mark + 2:]          # not plain (or a Blob): the writer's rules decide
        out = bytearray()
        if write(out, name, value):
            parts.append(bytes(out))
            count += 1
        else:
            del parts[mark:]
    if count:
        parts[count_at] = _pack_tu(codec.LIST, count)
    versions = session.versions
    if versions:
        n = len(versions)
        parts.append(_pack_tu(codec.LIST, n))
        for key, (counter, writer) in versions.items():
            parts.append(_VERSION_HEAD)
            if type(key) is str:
                parts.append(str_get(key) or new_str(key))
            else:
                codec.dump_parts(key, parts)
            codec.dump_parts(counter, parts)
            codec.dump_parts(writer, parts)
    else:
        parts.append(_EMPTY_LIST)
    return b"".join(parts)


_str_memo, _new_str_item, _int_items = codec._str_memo, codec._new_str_item, codec._INT_ITEMS
_write_plain = attr_values.write_plain_parts


_PEEK_STR = struct.Struct(">BI")
_PEEK_TIMES = struct.Struct(">BdBdBq")
_MAX_INTERVAL = 2 ** 31 - 1


def peek_record(blob):
    """(session id, max inactive interval) of a record's bytes, checked, without decoding the rest
    (which ``parse_record(codec.loads(blob))`` checks when the session is needed); ProtocolError."""
    if type(blob) is not bytes:
        raise ProtocolError("session record is not bytes")
    # a joiner peeks at every session it is sent: the shape record_bytes writes is read with two
    # struct calls; anything else (and every fault) goes through loads_head, which says what is wrong
    size = len(blob)
    if size <= codec.DEFAULT_MAX_SIZE and blob.startswith(_RECORD_HEAD) and size > 11:
        tag, n = _PEEK_STR.unpack_from(blob, 6)
        end = 11 + n
        if tag == codec.STR and 0 < n <= 4 * d.MAX_ID and end + 27 <= size:
            t1, _ctime, t2, _lat, t3, interval = _PEEK_TIMES.unpack_from(blob, end)
            if t1 == codec.FLOAT and t2 == codec.FLOAT and t3 == codec.INT and -1 <= interval <= _MAX_INTERVAL:
                try:
                    sid = blob[11:end].decode()
                except UnicodeDecodeError:
                    sid = ""
                if 0 < len(sid) <= d.MAX_ID:
                    return sid, interval
    head, count = codec.loads_head(blob, 4)
    if count != RECORD_FIELDS:
        raise ProtocolError("session record is not a list of %d fields" % RECORD_FIELDS)
    return d._str(head[0], d.MAX_ID, "session id"), d._seconds(head[3])


def _time(value, what):
    if type(value) is not float or not math.isfinite(value) or value < 0:
        raise ProtocolError("record %s is not a finite float >= 0" % what)
    return value


def parse_record(record):
    """Check a plain record and return (id, ctime, lat, max_inactive, principal, auth_type, clock,
    [(name, decoded structure)], {key: version}); ProtocolError on any fault."""
    if type(record) is not list or len(record) != RECORD_FIELDS:
        raise ProtocolError("session record is not a list of %d fields" % RECORD_FIELDS)
    sid, ctime, lat, interval, principal, auth_type, clock, attrs, versions = record
    sid = d._str(sid, d.MAX_ID, "session id")
    ctime, lat = _time(ctime, "creation time"), _time(lat, "last accessed time")
    interval = d._seconds(interval)
    if principal is not None:
        principal = d._action([d.PRINCIPAL, principal], 0, 1)[1]
    if auth_type is not None:
        auth_type = d._str(auth_type, d.MAX_NAME, "auth type")
    if type(clock) is not int or clock < 0:
        raise ProtocolError("record clock is not an int >= 0")
    if type(attrs) is not list or type(versions) is not list or len(versions) > MAX_VERSIONS \
            or len(attrs) > MAX_VERSIONS:
        raise ProtocolError("record attributes or versions are not bounded lists")
    parsed = []
    for item in attrs:
        if type(item) is not list or len(item) != 2:
            raise ProtocolError("record attribute is not [name, value]")
        parsed.append((d._str(item[0], d.MAX_NAME, "attribute name"), attr_values.decode_structure(item[1])))
    table = {}
    for item in versions:
        if type(item) is not list or len(item) != 3 or type(item[1]) is not int or item[1] < 0:
            raise ProtocolError("record version is not [key, counter, writer]")
        key = item[0]
        if type(key) is int:
            if key not in (d.MAX_INACTIVE, d.PRINCIPAL, d.AUTH_TYPE):
                raise ProtocolError("record version for unknown field %r" % key)
        else:
            key = d._str(key, d.MAX_NAME, "versioned attribute name")
        table[key] = (item[1], d._str(item[2], d.MAX_NAME, "writer", empty=True))
    return sid, ctime, lat, interval, principal, auth_type, clock, parsed, table


def merge_record(session, parsed, resolve, notify):
    """Bring ``session`` (new and empty, or an existing copy) up to a parsed record under the same
    last-writer-wins rule as deltas. Returns the names whose values were refused."""
    _sid, ctime, lat, interval, principal, auth_type, clock, attrs, versions = parsed
    fresh = not session.versions and not session.raw_attributes()
    if clock > session.clock:
        session.clock = clock
    if ctime < session.creation_time or fresh:
        session.creation_time = ctime
    if lat > session.last_accessed_time or fresh:
        session.last_accessed_time = lat
        session.this_accessed_time = max(session.this_accessed_time, lat) if not fresh else lat
    refused = []
    values = dict(attrs)

    def newer(key):
        return fresh or versions.get(key, _NONE) > session.version_of(key)

    if newer(d.MAX_INACTIVE):
        session.max_inactive_interval = interval
    if newer(d.PRINCIPAL):
        session.principal = principal_object(principal)
    if newer(d.AUTH_TYPE):
        session.auth_type = auth_type
    names = set(values) | {k for k in versions if type(k) is str}
    for name in names:
        if not newer(name):
            continue
        if name in values:
            try:
                value = resolve(name, values[name])
            except attr_values.values.ValueRefused as exc:
                refused.append((name, exc))
                continue
            session.set_attribute(name, value, notify, track=False)
        elif name in session.raw_attributes():
            session.remove_attribute(name, notify, track=False)
    merged = dict(session.versions or ())
    for key, version in versions.items():
        if version > merged.get(key, _NONE):
            merged[key] = version
    session.versions = merged or None
    return refused
