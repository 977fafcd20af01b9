"""pycat's value codec: the one serialization seam above ChannelData (never pickle, never dill).

Cluster messages (session deltas, map messages, RPC, file chunks) are built from plain values and
encoded here. The format is explicit, versioned and tagged, so a peer decodes exactly these types
and nothing else: there is no way to name a class or run code from the bytes.

    value   := VERSION (1 byte, currently 1) item
    item    := tag (1 byte) body
    tag 0x00 None                     (no body)
    tag 0x01 False / 0x02 True        (no body)
    tag 0x03 int in int64             8 bytes, big-endian, signed
    tag 0x04 any other int            u32 n + n bytes, big-endian two's complement (n >= 9)
    tag 0x05 float                    8 bytes, IEEE 754 binary64, big-endian
    tag 0x06 str                      u32 n + n bytes UTF-8 (surrogates pass through)
    tag 0x07 bytes                    u32 n + n bytes (bytearray / memoryview encode as bytes)
    tag 0x08 list / 0x09 tuple        u32 count + count items
    tag 0x0A dict                     u32 count + count (key item, value item); keys str, int or bytes

``loads`` raises ProtocolError for anything unexpected: another version, an unknown tag, a
length or count running past the input, nesting deeper than ``max_depth``, input larger than
``max_size``, a non-canonical int, a disallowed or repeated dict key, trailing bytes. ``dumps``
raises TypeError for a type outside the list (and ValueError for nesting deeper than the
decoder's default limit, so every encoded value is decodable by a default peer).
"""
import struct

from pycat.errors import ProtocolError

VERSION = 1
DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_SIZE = 16 * 1024 * 1024

NONE, FALSE, TRUE, INT, BIGINT, FLOAT, STR, BYTES, LIST, TUPLE, DICT = range(11)

_Q = struct.Struct(">q")
_D = struct.Struct(">d")
_U = struct.Struct(">I")
_TQ = struct.Struct(">Bq")
_TD = struct.Struct(">Bd")
_TU = struct.Struct(">BI")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_unpack_u, _unpack_q, _unpack_d = _U.unpack_from, _Q.unpack_from, _D.unpack_from
_KEY_TYPES = (str, int, bytes)


# -- encoding -------------------------------------------------------------------------------
def dumps(obj):
    """Encode a value made of None, bool, int, float, str, bytes, list, tuple, dict."""
    out = bytearray((VERSION,))
    _encode(obj, out, DEFAULT_MAX_DEPTH)
    return bytes(out)


def _enc_int(obj, out):
    if _INT64_MIN <= obj <= _INT64_MAX:
        out += _TQ.pack(INT, obj)
    else:
        raw = obj.to_bytes((obj.bit_length() + 8) // 8, "big", signed=True)
        out += _TU.pack(BIGINT, len(raw))
        out += raw


def _enc_str(obj, out):
    raw = obj.encode("utf-8", "surrogatepass")
    out += _TU.pack(STR, len(raw))
    out += raw


def _enc_bytes(obj, out):
    out += _TU.pack(BYTES, len(obj) if not isinstance(obj, memoryview) else obj.nbytes)
    out += obj


def _encode(obj, out, depth):
    kind = type(obj)
    if kind is str:
        _enc_str(obj, out)
    elif kind is int:
        _enc_int(obj, out)
    elif obj is None:
        out.append(NONE)
    elif kind is bool:
        out.append(TRUE if obj else FALSE)
    elif kind is bytes or kind is bytearray or kind is memoryview:
        _enc_bytes(obj, out)
    elif kind is float:
        out += _TD.pack(FLOAT, obj)
    elif kind is dict or kind is list or kind is tuple:
        if depth <= 0:
            raise ValueError("value nested deeper than %d levels" % DEFAULT_MAX_DEPTH)
        if kind is dict:
            out += _TU.pack(DICT, len(obj))
            for key, value in obj.items():
                if not isinstance(key, _KEY_TYPES) or isinstance(key, bool):
                    raise TypeError("dict keys must be str, int or bytes, not %s" % type(key).__name__)
                _encode(key, out, depth - 1)
                _encode(value, out, depth - 1)
        else:
            out += _TU.pack(LIST if kind is list else TUPLE, len(obj))
            for item in obj:
                _encode(item, out, depth - 1)
    else:
        _encode(_plain(obj), out, depth)


def _plain(obj):
    """The built-in value a subclass instance (IntEnum, OrderedDict, str subclass...) stands for."""
    for base in (bool, int, float, str, bytes, dict, list, tuple):
        if isinstance(obj, base):
            return base(obj)
    raise TypeError("the cluster codec cannot encode %s" % type(obj).__name__)


# -- decoding -------------------------------------------------------------------------------
def loads(data, max_depth=DEFAULT_MAX_DEPTH, max_size=DEFAULT_MAX_SIZE):
    """Decode ``dumps`` output; ProtocolError on anything unexpected."""
    if not isinstance(data, bytes):
        if not isinstance(data, (bytearray, memoryview)):
            raise TypeError("loads() needs bytes, not %s" % type(data).__name__)
        data = bytes(data)
    size = len(data)
    if size > max_size:
        raise ProtocolError("encoded value of %d bytes exceeds the maximum %d" % (size, max_size))
    if size < 2:
        raise ProtocolError("encoded value too short (%d bytes)" % size)
    if data[0] != VERSION:
        raise ProtocolError("unknown codec version %d" % data[0])
    value, pos = _decode(data, 1, size, max_depth)
    if pos != size:
        raise ProtocolError("%d trailing bytes after the encoded value" % (size - pos))
    return value


def _length(data, pos, size, what):
    if pos + 4 > size:
        raise ProtocolError("truncated %s length" % what)
    (n,) = _U.unpack_from(data, pos)
    return n, pos + 4


def _decode(data, pos, size, depth):
    if pos >= size:
        raise ProtocolError("truncated value")
    tag = data[pos]
    pos += 1
    if tag == STR or tag == BYTES or tag == BIGINT:
        n, pos = _length(data, pos, size, "string")
        end = pos + n
        if end > size:
            raise ProtocolError("string of %d bytes runs past the input" % n)
        if tag == BYTES:
            return data[pos:end], end
        if tag == STR:
            try:
                return data[pos:end].decode("utf-8", "surrogatepass"), end
            except UnicodeDecodeError as exc:
                raise ProtocolError("invalid UTF-8 in a string: %s" % exc) from None
        value = int.from_bytes(data[pos:end], "big", signed=True)
        if _INT64_MIN <= value <= _INT64_MAX or n != (value.bit_length() + 8) // 8:
            raise ProtocolError("non-canonical big int")
        return value, end
    if tag == INT or tag == FLOAT:
        if pos + 8 > size:
            raise ProtocolError("truncated number")
        return (_Q if tag == INT else _D).unpack_from(data, pos)[0], pos + 8
    if tag == NONE:
        return None, pos
    if tag == FALSE:
        return False, pos
    if tag == TRUE:
        return True, pos
    if tag == LIST or tag == TUPLE or tag == DICT:
        if depth <= 0:
            raise ProtocolError("value nested too deeply")
        count, pos = _length(data, pos, size, "container")
        # every item takes at least one byte: a count larger than the input is a lie, not a big list
        if count > size - pos:
            raise ProtocolError("container count %d runs past the input" % count)
        depth -= 1
        if tag == DICT:
            result = {}
            for _ in range(count):
                key, pos = _decode(data, pos, size, depth)
                if type(key) not in _KEY_TYPES:
                    raise ProtocolError("dict key of type %s" % type(key).__name__)
                if key in result:
                    raise ProtocolError("repeated dict key %r" % (key,))
                result[key], pos = _decode(data, pos, size, depth)
            return result, pos
        items = []
        append = items.append
        for _ in range(count):
            # the common scalars inline (a call per item is most of the cost of a long list);
            # the same checks and messages as _decode's
            if pos < size:
                item_tag = data[pos]
                if item_tag == STR:
                    if pos + 5 > size:
                        raise ProtocolError("truncated string length")
                    n = _unpack_u(data, pos + 1)[0]
                    start = pos + 5
                    end = start + n
                    if end > size:
                        raise ProtocolError("string of %d bytes runs past the input" % n)
                    try:
                        append(data[start:end].decode("utf-8", "surrogatepass"))
                    except UnicodeDecodeError as exc:
                        raise ProtocolError("invalid UTF-8 in a string: %s" % exc) from None
                    pos = end
                    continue
                if item_tag == INT or item_tag == FLOAT:
                    if pos + 9 > size:
                        raise ProtocolError("truncated number")
                    append((_unpack_q if item_tag == INT else _unpack_d)(data, pos + 1)[0])
                    pos += 9
                    continue
            item, pos = _decode(data, pos, size, depth)
            append(item)
        return (items if tag == LIST else tuple(items)), pos
    raise ProtocolError("unknown tag 0x%02x" % tag)
