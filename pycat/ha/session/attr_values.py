"""One session attribute value on the cluster wire: plain codec values, or one dill blob.

The codec (pycat/tribes/io/codec.py) carries None, bool, int, float, str, bytes, list, tuple and
dict. An attribute value becomes such a structure by this scheme, applied at every level:

    None, bool, int, float, str, bytes     themselves (exact types only)
    list                                   a list of encoded items
    dict whose keys are all exact str      a dict of str -> encoded value (order kept)
    everything else                        a TUPLE ``(code, payload)``:

    ("T",  [item, ...])                    tuple
    ("S",  [item, ...])                    set
    ("F",  [item, ...])                    frozenset
    ("D",  [key, value, key, value, ...])  dict with any other (hashable) keys
    ("ba", bytes)                          bytearray
    ("c",  [real, imag])                   complex (floats)
    ("d",  [y, m, d])                      datetime.date
    ("dt", [y, m, d, H, M, S, us, fold, tz])   datetime.datetime
    ("t",  [H, M, S, us, fold, tz])        datetime.time
    ("td", [days, seconds, microseconds])  datetime.timedelta
    ("dec", str)                           decimal.Decimal (str() round-trips NaN, -0, exponents)
    ("u",  bytes(16))                      uuid.UUID
    ("B",  bytes)                          a dill blob (values.dump): the WHOLE value, top level only

    tz := None | [utcoffset in microseconds, tzname]     (datetime.timezone only)

A codec tuple on the wire is therefore always a tag, never user data: a user's own tuple travels
as ``("T", [...])``, so ``("S", [1])`` as a user value comes back as that tuple, not as a set.

Plain means exact types: subclasses (IntEnum, OrderedDict, namedtuple, str subclasses), datetimes
with a tzinfo other than datetime.timezone, cyclic structures, and values nested deeper than
``MAX_DEPTH`` are dill blobs, as is anything of another type. A value that needs a blob is a blob
as a whole (the identity of the objects inside it is kept). ``needs_trust(value)`` says so before
sending: the cluster refuses such values at set time on a channel without authentication.

``decode`` checks the structure strictly (ProtocolError for anything else) and refuses a blob from
an untrusted source with ``BlobRefused`` (a ValueRefused) without loading a byte of it; a trusted
blob is loaded by ``pycat.session.values.load`` (the one module that unpickles) with the caller's
class filter and loader. ``decode_structure`` does the structural part alone and returns a ``Blob``
for a blob, for a caller that decides about trust later (``resolve``).
"""
import datetime
import decimal
import struct
import uuid

from pycat.errors import ProtocolError
from pycat.session import values
from pycat.tribes.io import codec

#: user nesting levels carried plainly (each may cost two codec levels); deeper values are blobs
MAX_DEPTH = 24

_SCALARS = (type(None), bool, int, float, str, bytes)
_SEQ_CODES = {"T": tuple, "S": set, "F": frozenset}


class BlobRefused(values.ValueRefused):
    """A dill blob arrived from a source that is not trusted: refused, never loaded."""

    def __init__(self, reason="arrived on a channel without authentication and was not loaded"):
        super().__init__("<dill blob>", reason)


class Blob:
    """The undecoded bytes of a dill-blob value (``decode_structure``'s answer for one)."""
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = bytes(data)

    def __eq__(self, other):
        return type(other) is Blob and other.data == self.data

    def __hash__(self):
        return hash(self.data)

    def __repr__(self):
        return "Blob(%d bytes)" % len(self.data)


class _NotPlain(Exception):
    pass


# -- out ----------------------------------------------------------------------------------------
def _tz(tzinfo):
    if tzinfo is None:
        return None
    if type(tzinfo) is not datetime.timezone:
        raise _NotPlain
    off = tzinfo.utcoffset(None)
    return [(off.days * 86400 + off.seconds) * 1000000 + off.microseconds, tzinfo.tzname(None)]


def _plain(value, depth, path):
    kind = type(value)
    if kind in _SCALARS:
        return value
    if depth <= 0:
        raise _NotPlain
    if kind is list or kind is tuple or kind is set or kind is frozenset or kind is dict:
        key = id(value)
        if key in path:
            raise _NotPlain                   # a cycle: pickle keeps it, we cannot
        path.add(key)
        try:
            depth -= 1
            if kind is list:
                return [_plain(item, depth, path) for item in value]
            if kind is dict:
                if all(type(k) is str for k in value):
                    return {k: _plain(v, depth, path) for k, v in value.items()}
                flat = []
                for k, v in value.items():
                    flat.append(_plain(k, depth, path))
                    flat.append(_plain(v, depth, path))
                return ("D", flat)
            code = "T" if kind is tuple else "S" if kind is set else "F"
            return (code, [_plain(item, depth, path) for item in value])
        finally:
            path.discard(key)
    if kind is datetime.datetime:
        v = value
        return ("dt", [v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, v.fold,
                       _tz(v.tzinfo)])
    if kind is datetime.date:
        return ("d", [value.year, value.month, value.day])
    if kind is datetime.time:
        v = value
        return ("t", [v.hour, v.minute, v.second, v.microsecond, v.fold, _tz(v.tzinfo)])
    if kind is datetime.timedelta:
        return ("td", [value.days, value.seconds, value.microseconds])
    if kind is decimal.Decimal:
        return ("dec", str(value))
    if kind is uuid.UUID:
        return ("u", value.bytes)
    if kind is bytearray:
        return ("ba", bytes(value))
    if kind is complex:
        return ("c", [value.real, value.imag])
    raise _NotPlain


def needs_trust(value):
    """True if ``value`` would travel as a dill blob (receivers load it only from trusted peers)."""
    if type(value) is Blob:
        return True
    try:
        _plain(value, MAX_DEPTH, set())
    except _NotPlain:
        return True
    return False


def encode(value, class_filter=None, loader=None):
    """The wire form of ``value`` (see the module doc). A value that is not plain becomes
    ``("B", values.dump(value, class_filter, loader))``: ValueRefused if the filter refuses it,
    what the pickler raised if nothing can write it. A ``Blob`` passes through as its bytes."""
    if type(value) is Blob:
        return ("B", value.data)
    try:
        return _plain(value, MAX_DEPTH, set())
    except _NotPlain:
        return ("B", values.dump(value, class_filter, loader))


# -- out, straight to codec bytes ---------------------------------------------------------------
# ``write(value, out)`` appends what ``codec.dump_into(encode(value), out)`` would, in one walk
# of the value instead of two (the state transfer's sender encodes every session this way): the
# same scheme, the same exact-type rules, cycle and depth checks, the same bytes (tests compare).
_C = codec
_pack_tu = struct.Struct(">BI").pack
_pack_tq = struct.Struct(">Bq").pack
_pack_td = struct.Struct(">Bd").pack
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_STR, _INT, _FLOAT, _LIST, _TUPLE, _DICT = _C.STR, _C.INT, _C.FLOAT, _C.LIST, _C.TUPLE, _C.DICT
_TAG_HEAD = {code: _pack_tu(_TUPLE, 2) + _pack_tu(_STR, len(code)) + code.encode() for code in
             ("T", "S", "F", "D", "B")}


# short strings' item bytes are remembered by the codec (keys and small values recur in every session)
_memo = _C._str_memo
_s = _C._new_str_item
str_item = _C.str_item


def _w(value, parts, depth, _mg=_memo.get, _s=_s, _ig=_C._INT_ITEMS.get, _int=_C.int_item, _tu=_pack_tu,
       _lh=_C._LIST_HEADS, _dh=_C._DICT_HEADS):
    # Appends the value's item bytes to the list ``parts`` (joined once by the caller: the codec's
    # way, see codec.py). No set of the containers on the path: a cycle is found by the depth
    # limit, which it always reaches, and gets the same answer (NotPlain: a dill blob) after at
    # most MAX_DEPTH turns; a set costs four operations per container of every session sent. The
    # types most values are made of are tested first, and scalars inside containers are written
    # inline (a call per item is most of the cost of a short list).
    kind = type(value)
    if kind is str:
        parts.append(_mg(value) or _s(value))
        return
    if kind is dict:
        if depth <= 0:
            raise _NotPlain
        depth -= 1
        n = len(value)
        mark = len(parts)
        parts.append(_dh[n] if n < 64 else _tu(_DICT, n))
        for k, v in value.items():
            if type(k) is not str:
                break
            parts.append(_mg(k) or _s(k))
            t = type(v)
            if t is str:
                parts.append(_mg(v) or _s(v))
            elif t is int:
                parts.append(_ig(v) or _int(v))
            else:
                _w(v, parts, depth)
        else:
            return
        # a key that is not a str: ("D", [key, value, ...])
        del parts[mark:]
        parts.append(_TAG_HEAD["D"])
        parts.append(_tu(_LIST, 2 * n))
        for k, v in value.items():
            _w(k, parts, depth)
            _w(v, parts, depth)
        return
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        if depth <= 0:
            raise _NotPlain
        depth -= 1
        n = len(value)
        if kind is not list:
            parts.append(_TAG_HEAD["T" if kind is tuple else "S" if kind is set else "F"])
        parts.append(_lh[n] if n < 64 else _tu(_LIST, n))
        for item in value:
            t = type(item)
            if t is str:
                parts.append(_mg(item) or _s(item))
            elif t is int:
                parts.append(_ig(item) or _int(item))
            else:
                _w(item, parts, depth)
        return
    if kind is int:
        parts.append(_ig(value) or _int(value))
        return
    if kind is float:
        parts.append(_pack_td(_FLOAT, value))
        return
    if kind in _SCALARS:             # None, bool, bytes
        _C.dump_parts(value, parts)
        return
    if depth <= 0:
        raise _NotPlain
    # the rarer plain types (datetime, Decimal, UUID...): their structure, then the codec
    _C.dump_parts(_plain(value, depth, set()), parts)


def write_plain(value, out, depth=MAX_DEPTH, path=None):
    """Append the codec item of a plain value (``encode``'s form) to the bytearray ``out``;
    NotPlain, with ``out`` as it was, for a value that would be a dill blob. ``path`` is
    accepted for callers of older versions and not used."""
    if type(value) is Blob:
        raise _NotPlain
    parts = []
    _w(value, parts, depth)
    out += b"".join(parts)


#: (value, parts, depth): append a plain value's item bytes to the list ``parts``, or raise
#: NotPlain (``parts`` then holds part of it: the caller truncates); a Blob is not plain
write_plain_parts = _w


NotPlain = _NotPlain


def write(value, out, class_filter=None, loader=None, allow_blob=True):
    """Append the codec item of ``encode(value)`` to the bytearray ``out`` (see above); True if
    that is a dill blob. With ``allow_blob`` False a value that needs one is not written (``out``
    is left as it was) and the answer is True without pickling anything. Raises what ``encode``
    raises (``out`` left as it was)."""
    if type(value) is not Blob:
        try:
            parts = []
            _w(value, parts, MAX_DEPTH)
            out += b"".join(parts)
            return False
        except _NotPlain:
            pass
        if not allow_blob:
            return True
        data = values.dump(value, class_filter, loader)
    else:
        if not allow_blob:
            return True
        data = value.data
    out += _TAG_HEAD["B"]
    out += _pack_tu(_C.BYTES, len(data))
    out += data
    return True


# -- in -----------------------------------------------------------------------------------------
def _bad(what):
    raise ProtocolError("malformed attribute value: %s" % what)


def _ints(payload, n, what):
    if type(payload) is not list or len(payload) != n:
        _bad("%s needs a list of %d fields" % (what, n))
    return payload


def _check_int(v, what):
    if type(v) is not int:
        _bad("%s field is not an int" % what)
    return v


def _tz_in(obj):
    if obj is None:
        return None
    if type(obj) is not list or len(obj) != 2 or type(obj[0]) is not int or type(obj[1]) is not str:
        _bad("time zone")
    offset = datetime.timedelta(microseconds=obj[0])
    if obj[1] == "UTC" and not obj[0]:
        return datetime.timezone.utc
    return datetime.timezone(offset, obj[1])


def _value(obj):
    kind = type(obj)
    if kind in _SCALARS:
        return obj
    if kind is list:
        return [_value(item) for item in obj]
    if kind is dict:
        result = {}
        for k, v in obj.items():
            if type(k) is not str:
                _bad("plain dict with a key of type %s" % type(k).__name__)
            result[k] = _value(v)
        return result
    if kind is not tuple or len(obj) != 2 or type(obj[0]) is not str:
        _bad("a tuple that is not a (code, payload) pair")
    code, payload = obj
    if code in _SEQ_CODES:
        if type(payload) is not list:
            _bad("%s payload is not a list" % code)
        items = [_value(item) for item in payload]
        result = _SEQ_CODES[code](items)
        if code != "T" and len(result) != len(items):
            _bad("repeated set element")
        return result
    if code == "D":
        if type(payload) is not list or len(payload) % 2:
            _bad("D payload is not a list of key/value pairs")
        result = {}
        for i in range(0, len(payload), 2):
            key = _value(payload[i])
            if key in result:
                _bad("repeated dict key")
            result[key] = _value(payload[i + 1])
        return result
    if code in ("ba", "u") and type(payload) is bytes:
        if code == "ba":
            return bytearray(payload)
        if len(payload) != 16:
            _bad("UUID of %d bytes" % len(payload))
        return uuid.UUID(bytes=payload)
    if code == "dec" and type(payload) is str:
        if len(payload) > 4096:
            _bad("decimal too long")
        return decimal.Decimal(payload)
    if code == "c":
        p = _ints(payload, 2, "complex")
        if type(p[0]) is not float or type(p[1]) is not float:
            _bad("complex parts are not floats")
        return complex(p[0], p[1])
    if code == "d":
        p = _ints(payload, 3, "date")
        return datetime.date(*(_check_int(v, "date") for v in p))
    if code == "dt":
        p = _ints(payload, 9, "datetime")
        fields = [_check_int(v, "datetime") for v in p[:8]]
        return datetime.datetime(*fields[:7], tzinfo=_tz_in(p[8]), fold=fields[7])
    if code == "t":
        p = _ints(payload, 6, "time")
        fields = [_check_int(v, "time") for v in p[:5]]
        return datetime.time(*fields[:4], tzinfo=_tz_in(p[5]), fold=fields[4])
    if code == "td":
        p = _ints(payload, 3, "timedelta")
        return datetime.timedelta(*(_check_int(v, "timedelta") for v in p))
    if code == "B":
        _bad("a dill blob inside a plain value")
    _bad("unknown or mistyped code %r" % (code,))


def decode_structure(obj):
    """The value ``obj`` stands for, with a top-level dill blob as an unloaded ``Blob``.
    ProtocolError for any structure ``encode`` does not produce."""
    if type(obj) is tuple and len(obj) == 2 and obj[0] == "B":
        if type(obj[1]) is not bytes:
            _bad("blob payload is not bytes")
        return Blob(obj[1])
    try:
        return _value(obj)
    except ProtocolError:
        raise
    except (TypeError, ValueError, OverflowError, ArithmeticError, RecursionError) as exc:
        # unhashable set element or key, out-of-range date fields, a bad Decimal string...
        raise ProtocolError("malformed attribute value: %s: %s" % (type(exc).__name__, exc)) from None


def resolve(value, trusted, class_filter=None, loader=None):
    """A ``decode_structure`` result as the value: a Blob is loaded when ``trusted`` (values.load,
    with the filter and the app's loader) and refused with BlobRefused, unread, when not."""
    if type(value) is not Blob:
        return value
    if not trusted:
        raise BlobRefused()
    return values.load(value.data, True, class_filter, loader)


def decode(obj, trusted, class_filter=None, loader=None):
    """The value encoded as ``obj``: ProtocolError if malformed, BlobRefused for a blob from an
    untrusted source (never loaded), what values.load raises for a refused or damaged trusted blob."""
    return resolve(decode_structure(obj), trusted, class_filter, loader)
