"""DeltaRequest (one request's changes to one session) and SessionMessage, as plain codec values.

A DeltaRequest is Tomcat's DeltaRequest: the ordered actions one request made on one session, sent
at the end of the request as one message. Its plain form (``to_plain``, then ``codec.dumps``) is a
flat list, by position (version 1 was a dict of five keys; a delta costs about half the codec
items now):

    [2,                      version
     app: str,               the application (cluster manager) name
     id: str,                session id when the request began
     counter: int >= 0,      per-session version (counter, writer): every replica keeps the
     writer: str,            greatest, so all settle alike
     [[code, args...], ...]] the actions

    [CREATE, max_inactive, creation_time]  first action only; max_inactive seconds (-1: never)
    [SET, name, value]                     value in attr_values' scheme (may be a dill blob)
    [REMOVE, name]
    [MAX_INACTIVE, seconds]                -1 (never expires) or >= 0
    [PRINCIPAL, None | [name, [role, ...]]]
    [AUTH_TYPE, None | str]
    [ACCESS, last_accessed_time]           times: float seconds since the epoch, finite, >= 0
    [INVALIDATE] / [EXPIRE]                last action: the session is gone everywhere
    [CHANGE_ID, new_id]                    later actions (and the replica's table) use new_id

Coalescing (``record_all_actions`` False, Tomcat's default): one action per key survives, the last
recorded, at the place it was recorded last (keys: each attribute name, for SET and REMOVE alike,
so set-then-remove leaves the remove; max inactive; principal; auth type; access; id change).
INVALIDATE/EXPIRE drop everything before them but CREATE. Nothing may be recorded after them.

``from_plain`` validates the whole structure before building anything and raises ProtocolError
(pycat.errors) on the first fault: a wrong version or field count, unknown codes, wrong types or
arities, negative times, oversize names or ids, more than ``max_actions`` actions. SET values are decoded by
``attr_values.decode_structure``: a dill blob stays an unloaded ``attr_values.Blob`` until the
manager calls ``attr_values.resolve`` with the channel's trust.
"""
import math
import time

from pycat.errors import IllegalStateError, ProtocolError
from pycat.ha.session import attr_values
from pycat.tribes.io import codec

VERSION = 2
DELTA_FIELDS = 6
MAX_ACTIONS = 4096
MAX_NAME = 1024          # attribute, app and writer names, auth type, principal name and roles
MAX_ID = 256             # session ids
MAX_ROLES = 1024

CREATE, SET, REMOVE, MAX_INACTIVE, PRINCIPAL, AUTH_TYPE, ACCESS, INVALIDATE, EXPIRE, CHANGE_ID = range(10)
_ARITY = {CREATE: 2, SET: 2, REMOVE: 1, MAX_INACTIVE: 1, PRINCIPAL: 1, AUTH_TYPE: 1, ACCESS: 1,
          INVALIDATE: 0, EXPIRE: 0, CHANGE_ID: 1}
_TERMINAL = (INVALIDATE, EXPIRE)
SKIP = object()         # what a to_plain encode function answers to leave a SET out
_SCALARS = frozenset((type(None), bool, int, float, str, bytes))


def _key(action):
    code = action[0]
    if code == SET or code == REMOVE:
        return ("attr", action[1])
    return code


def _interval(seconds):
    seconds = int(seconds)
    return -1 if seconds < 0 else seconds


def _principal(principal):
    if principal is None:
        return None
    if isinstance(principal, (tuple, list)):
        name, roles = principal
    else:
        name, roles = principal.name, getattr(principal, "roles", ())
    return (str(name), tuple(sorted(str(r) for r in roles)))


_NO_VERSION = (0, "")


class DeltaRequest:
    """The actions of one request on one session, coalesced unless ``record_all_actions``."""

    def __init__(self, app, session_id, version=_NO_VERSION, record_all_actions=False):
        self.app = app
        self.session_id = session_id
        self.version = version if version is _NO_VERSION else (int(version[0]), str(version[1]))
        self.record_all_actions = record_all_actions
        self.actions = []      # tuples (code, args...); SET values as given (or attr_values.Blob)

    # -- recording ----------------------------------------------------------------------------
    def _add(self, action):
        if self.actions and self.actions[-1][0] in _TERMINAL:
            raise IllegalStateError("session %s already ended in this request" % self.session_id)
        if not self.record_all_actions:
            key = _key(action)
            self.actions = [a for a in self.actions if _key(a) != key]
        self.actions.append(action)

    def create(self, max_inactive, creation_time):
        if self.actions:
            raise IllegalStateError("create must be the first action of a delta")
        self._add((CREATE, _interval(max_inactive), float(creation_time)))

    def set_attribute(self, name, value):
        self._add((SET, name, value))

    def remove_attribute(self, name):
        self._add((REMOVE, name))

    def set_max_inactive(self, seconds):
        self._add((MAX_INACTIVE, _interval(seconds)))

    def set_principal(self, principal):
        self._add((PRINCIPAL, _principal(principal)))

    def set_auth_type(self, auth_type):
        self._add((AUTH_TYPE, auth_type))

    def access(self, last_accessed_time):
        self._add((ACCESS, float(last_accessed_time)))

    def _end(self, code):
        if not self.record_all_actions:
            self.actions = [a for a in self.actions if a[0] == CREATE]
        self._add((code,))

    def invalidate(self):
        self._end(INVALIDATE)

    def expire(self):
        self._end(EXPIRE)

    def change_id(self, new_id):
        self._add((CHANGE_ID, new_id))

    def clear(self):
        self.actions = []

    def discard_attribute(self, name):
        """Drop every pending SET/REMOVE of ``name`` (a later replicated write superseded it)."""
        self.actions = [a for a in self.actions if not ((a[0] == SET or a[0] == REMOVE) and a[1] == name)]

    def __len__(self):
        return len(self.actions)

    # -- wire ---------------------------------------------------------------------------------
    def to_plain(self, class_filter=None, loader=None, encode=None, encoder=None):
        """The plain form (module doc). SET values go through ``attr_values.encode`` now (so a value
        mutated after it was set travels as it is at the end of the request), or through
        ``encode(name, value)``, which may answer SKIP to leave the action out. ``encoder``: a
        function that makes that ``encode``, called when a value first needs it: a value of an
        exact scalar type (None, bool, int, float, str, bytes) is its own wire form, so a delta
        of such values never makes one (for a caller that has left out the names that stay home,
        as encode would)."""
        actions = []
        for action in self.actions:
            code = action[0]
            if code == SET:
                if encoder is not None:
                    if type(action[2]) in _SCALARS:
                        actions.append([SET, action[1], action[2]])
                        continue
                    encode, encoder = encoder(), None
                if encode is None:
                    actions.append([SET, action[1], attr_values.encode(action[2], class_filter, loader)])
                else:
                    wire = encode(action[1], action[2])
                    if wire is not SKIP:
                        actions.append([SET, action[1], wire])
            elif code == PRINCIPAL and action[1] is not None:
                actions.append([PRINCIPAL, [action[1][0], list(action[1][1])]])
            else:
                actions.append(list(action))
        return [VERSION, self.app, self.session_id, self.version[0], self.version[1], actions]

    def to_bytes(self, class_filter=None, loader=None):
        return codec.dumps(self.to_plain(class_filter, loader))

    def to_encoded(self, class_filter=None, loader=None, encode=None, encoder=None):
        """``to_plain``'s value as a ``codec.Encoded`` item: the same bytes as encoding it (tests
        compare), written straight from the actions (a delta is encoded for every replicated
        request; the usual SETs of scalars are written without building the plain form and
        without the codec's walk). The same rules as to_plain for ``encode`` and ``encoder``."""
        parts = [_DELTA_HEAD]
        for field in (self.app, self.session_id, self.version[0], self.version[1]):
            kind = type(field)
            if kind is str:
                parts.append(_str_get(field) or _new_str(field))
            elif kind is int:
                parts.append(_int_get(field) or _int_item(field))
            else:
                codec.dump_parts(field, parts)
        count_at = len(parts)
        parts.append(None)
        count = 0
        for action in self.actions:
            code = action[0]
            if code == SET:
                name, value = action[1], action[2]
                kind = type(value)
                if encoder is None or kind not in _SCALARS:
                    if encoder is not None:
                        encode, encoder = encoder(), None
                    if encode is None:
                        value = attr_values.encode(value, class_filter, loader)
                    else:
                        value = encode(name, value)
                        if value is SKIP:
                            continue
                    kind = type(value)
                parts.append(_SET_HEAD)
                if type(name) is str:
                    parts.append(_str_get(name) or _new_str(name))
                else:
                    codec.dump_parts(name, parts)
                if kind is str:
                    parts.append(_str_get(value) or _new_str(value))
                elif kind is int:
                    parts.append(_int_get(value) or _int_item(value))
                else:
                    codec.dump_parts(value, parts)
            elif code == PRINCIPAL and action[1] is not None:
                codec.dump_parts([PRINCIPAL, [action[1][0], list(action[1][1])]], parts)
            else:
                codec.dump_parts(list(action), parts)
            count += 1
        parts[count_at] = _LIST_HEADS[count] if count < len(_LIST_HEADS) else codec._TU.pack(codec.LIST, count)
        return codec.Encoded(b"".join(parts))

    @classmethod
    def from_plain(cls, plain, max_actions=MAX_ACTIONS):
        """The DeltaRequest ``plain`` holds; ProtocolError for any fault, before anything is built."""
        if type(plain) is not list or not plain:
            raise ProtocolError("delta is not a list")
        if type(plain[0]) is not int or plain[0] != VERSION:
            raise ProtocolError("unsupported delta version %r" % (plain[0],))
        if len(plain) != DELTA_FIELDS:
            raise ProtocolError("delta of %d fields, not %d" % (len(plain), DELTA_FIELDS))
        _version, app, session_id, counter, writer, raw = plain
        # the common case checked inline (a call per field is a good part of a small delta's cost);
        # _str says what is wrong otherwise
        if type(app) is not str or len(app) > MAX_NAME:
            _str(app, MAX_NAME, "app name", empty=True)
        if type(session_id) is not str or not 0 < len(session_id) <= MAX_ID:
            _str(session_id, MAX_ID, "session id")
        if type(counter) is not int or counter < 0:
            raise ProtocolError("delta version counter is not an int >= 0")
        if type(writer) is not str or len(writer) > MAX_NAME:
            _str(writer, MAX_NAME, "writer", empty=True)
        if type(raw) is not list:
            raise ProtocolError("delta actions is not a list")
        count = len(raw)
        if count > max_actions:
            raise ProtocolError("delta of %d actions exceeds the maximum %d" % (count, max_actions))
        actions = []
        for i, item in enumerate(raw):
            # a SET of a scalar value, the usual action, checked inline; everything else by _action
            if type(item) is list and len(item) == 3 and type(item[0]) is int and item[0] == SET \
                    and type(item[1]) is str and 0 < len(item[1]) <= MAX_NAME and type(item[2]) in _SCALARS:
                actions.append((SET, item[1], item[2]))
            else:
                actions.append(_action(item, i, count))
        request = cls.__new__(cls)
        request.app, request.session_id, request.version = app, session_id, (counter, writer)
        request.record_all_actions = True
        request.actions = actions
        return request

    @classmethod
    def from_bytes(cls, data, max_actions=MAX_ACTIONS):
        return cls.from_plain(codec.loads(data), max_actions)

    def __repr__(self):
        return "DeltaRequest(%r, %r, version=%r, %d actions)" % (
            self.app, self.session_id, self.version, len(self.actions))


def _str(value, limit, what, empty=False):
    if type(value) is not str:
        raise ProtocolError("%s is not a str" % what)
    if len(value) > limit or (not value and not empty):
        raise ProtocolError("%s of %d characters (1..%d)" % (what, len(value), limit))
    return value


def _time(value, what):
    if type(value) is not float or not math.isfinite(value) or value < 0:
        raise ProtocolError("%s is not a finite float >= 0" % what)
    return value


def _seconds(value):
    if type(value) is not int or value < -1 or value > 2 ** 31 - 1:
        raise ProtocolError("max inactive interval %r is not -1 or 0..2^31-1" % (value,))
    return value


def _action(item, index, count):
    if type(item) is not list or not item or type(item[0]) is not int or item[0] not in _ARITY:
        raise ProtocolError("delta action %d is not [known code, args...]" % index)
    code = item[0]
    if len(item) != 1 + _ARITY[code]:
        raise ProtocolError("delta action %d (code %d) has %d arguments" % (index, code, len(item) - 1))
    if code == CREATE:
        if index != 0:
            raise ProtocolError("create is not the first action")
        return (CREATE, _seconds(item[1]), _time(item[2], "creation time"))
    if code in _TERMINAL:
        if index != count - 1:
            raise ProtocolError("actions after the session ended")
        return (code,)
    if code == SET:
        return (SET, _str(item[1], MAX_NAME, "attribute name"), attr_values.decode_structure(item[2]))
    if code == REMOVE:
        return (REMOVE, _str(item[1], MAX_NAME, "attribute name"))
    if code == MAX_INACTIVE:
        return (MAX_INACTIVE, _seconds(item[1]))
    if code == ACCESS:
        return (ACCESS, _time(item[1], "last accessed time"))
    if code == CHANGE_ID:
        return (CHANGE_ID, _str(item[1], MAX_ID, "new session id"))
    if code == AUTH_TYPE:
        return (AUTH_TYPE, None if item[1] is None else _str(item[1], MAX_NAME, "auth type"))
    # PRINCIPAL
    p = item[1]
    if p is None:
        return (PRINCIPAL, None)
    if type(p) is not list or len(p) != 2 or type(p[1]) is not list or len(p[1]) > MAX_ROLES:
        raise ProtocolError("principal is not [name, [roles]]")
    name = _str(p[0], MAX_NAME, "principal name", empty=True)
    roles = tuple(_str(r, MAX_NAME, "role", empty=True) for r in p[1])
    return (PRINCIPAL, (name, roles))


# -- SessionMessage -----------------------------------------------------------------------------
# Tomcat's SessionMessage event types (org.apache.catalina.ha.session.SessionMessage)
EVT_SESSION_CREATED = 1
EVT_SESSION_EXPIRED = 2
EVT_SESSION_ACCESSED = 3
EVT_GET_ALL_SESSIONS = 4
EVT_ALL_SESSION_DATA = 12
EVT_SESSION_DELTA = 13
EVT_ALL_SESSION_TRANSFERCOMPLETE = 14
EVT_CHANGE_SESSION_ID = 15
EVT_ALL_SESSION_NOCONTEXTMANAGER = 16
EVENT_NAMES = {
    EVT_SESSION_CREATED: "SESSION-CREATED", EVT_SESSION_EXPIRED: "SESSION-EXPIRED",
    EVT_SESSION_ACCESSED: "SESSION-ACCESSED", EVT_GET_ALL_SESSIONS: "SESSION-GET-ALL",
    EVT_ALL_SESSION_DATA: "SESSION-ALL-DATA", EVT_SESSION_DELTA: "SESSION-DELTA",
    EVT_ALL_SESSION_TRANSFERCOMPLETE: "SESSION-STATE-TRANSFERRED",
    EVT_CHANGE_SESSION_ID: "SESSION-ID-CHANGED",
    EVT_ALL_SESSION_NOCONTEXTMANAGER: "NO-CONTEXT-MANAGER",
}
MESSAGE_FIELDS = 7


class SessionMessage:
    """Tomcat's SessionMessageImpl: app (context) name, event type, session id ("" when none),
    timestamp (ms), unique id, payload (any codec value: a delta's plain form, ...).

    Plain form, a flat list by position: [2 (version), app, event type, session id, timestamp,
    unique id, payload] (version 1 was a dict of seven keys). ``to_bytes``/``from_bytes`` go
    through the codec; ``from_plain`` raises ProtocolError on any fault of the envelope (the
    payload is checked by whoever reads it, e.g. ``delta()``)."""
    __slots__ = ("app", "event_type", "session_id", "timestamp", "unique_id", "payload")

    def __init__(self, app, event_type, session_id="", payload=None, unique_id="", timestamp=None):
        if event_type not in EVENT_NAMES:
            raise ValueError("unknown session event type %r" % (event_type,))
        self.app, self.event_type, self.session_id = app, event_type, session_id
        self.payload, self.unique_id = payload, unique_id
        self.timestamp = int(time.time() * 1000) if timestamp is None else int(timestamp)

    @property
    def event_name(self):
        return EVENT_NAMES[self.event_type]

    def to_plain(self):
        return [VERSION, self.app, self.event_type, self.session_id, self.timestamp, self.unique_id, self.payload]

    def to_bytes(self):
        return codec.dumps(self.to_plain())

    @staticmethod
    def encoded(app, event_type, session_id, timestamp, unique_id, payload):
        """The plain form of such a message as a ``codec.Encoded`` item (the same bytes as encoding
        ``to_plain()``, written straight): what the manager sends. ``payload`` may be an Encoded
        item itself (a delta's ``to_encoded``)."""
        parts = [_MESSAGE_HEAD]
        for field in (app, event_type, session_id, timestamp, unique_id):
            kind = type(field)
            if kind is str:
                parts.append(_str_get(field) or _new_str(field))
            elif kind is int:
                parts.append(_int_get(field) or _int_item(field))
            else:
                codec.dump_parts(field, parts)
        codec.dump_parts(payload, parts)
        return codec.Encoded(b"".join(parts))

    @classmethod
    def from_plain(cls, plain):
        if type(plain) is not list or not plain:
            raise ProtocolError("session message is not a list")
        if type(plain[0]) is not int or plain[0] != VERSION:
            raise ProtocolError("unsupported session message version %r" % (plain[0],))
        if len(plain) != MESSAGE_FIELDS:
            raise ProtocolError("session message of %d fields, not %d" % (len(plain), MESSAGE_FIELDS))
        _version, app, evt, sid, ts, uid, payload = plain
        if type(evt) is not int or evt not in EVENT_NAMES:
            raise ProtocolError("unknown session event type %r" % (evt,))
        if type(ts) is not int or ts < 0:
            raise ProtocolError("session message timestamp is not an int >= 0")
        if type(app) is not str or len(app) > MAX_NAME:
            _str(app, MAX_NAME, "app name", empty=True)
        if type(sid) is not str or len(sid) > MAX_ID:
            _str(sid, MAX_ID, "session id", empty=True)
        if type(uid) is not str or len(uid) > MAX_NAME:
            _str(uid, MAX_NAME, "unique id", empty=True)
        message = cls.__new__(cls)
        message.app, message.event_type, message.session_id = app, evt, sid
        message.payload, message.unique_id, message.timestamp = payload, uid, ts
        return message

    @classmethod
    def from_bytes(cls, data):
        return cls.from_plain(codec.loads(data))

    def delta(self, max_actions=MAX_ACTIONS):
        """The DeltaRequest of an EVT_SESSION_DELTA message, checked against the envelope."""
        if self.event_type != EVT_SESSION_DELTA:
            raise ProtocolError("%s carries no delta" % self.event_name)
        request = DeltaRequest.from_plain(self.payload, max_actions)
        if request.app != self.app or request.session_id != self.session_id:
            raise ProtocolError("delta for %s/%s in a message for %s/%s" % (
                request.app, request.session_id, self.app, self.session_id))
        return request

    def __repr__(self):
        return "SessionMessage(%r, %s, %r)" % (self.app, self.event_name, self.session_id)


# -- straight writers' pieces (to_encoded, SessionMessage.encoded) ---------------------------------
_str_get, _new_str = codec._str_memo.get, codec._new_str_item
_int_get, _int_item = codec._INT_ITEMS.get, codec.int_item
_LIST_HEADS = codec._LIST_HEADS
_DELTA_HEAD = _LIST_HEADS[DELTA_FIELDS] + codec.int_item(VERSION)
_MESSAGE_HEAD = _LIST_HEADS[MESSAGE_FIELDS] + codec.int_item(VERSION)
_SET_HEAD = _LIST_HEADS[3] + codec.int_item(SET)
