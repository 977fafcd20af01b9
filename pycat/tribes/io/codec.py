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
# The encoder appends the items' bytes to a list and joins them once: list.append is a fraction of
# the cost of growing a bytearray, and the bytes items of a message (state-transfer records) are
# copied once, by the join. Heads of short strings, lists and dicts and the items of small ints
# are made once here (a struct pack per item costs more than the tuple or dict that holds them).
_VERSION_BYTE = bytes((VERSION,))
_STR_HEADS = tuple(_TU.pack(STR, n) for n in range(256))
_LIST_HEADS = tuple(_TU.pack(LIST, n) for n in range(64))
_TUPLE_HEADS = tuple(_TU.pack(TUPLE, n) for n in range(64))
_DICT_HEADS = tuple(_TU.pack(DICT, n) for n in range(64))
#: exact ints -> their items (look up exact ints only: True == 1 as a dict key)
_INT_ITEMS = {n: _TQ.pack(INT, n) for n in range(-256, 4096)}
_NONE_ITEM, _FALSE_ITEM, _TRUE_ITEM = bytes((NONE,)), bytes((FALSE,)), bytes((TRUE,))


class Encoded(bytes):
    """The item bytes of a value, made by a writer of its own (``dump_parts`` and the heads and
    items below): the encoder copies them as they are, so a message built from parts encoded
    apart needs no second walk. For the encoding side only; whoever makes one answers for its
    bytes being one well-formed item (the decoder checks them like any other)."""
    __slots__ = ()


def dumps(obj):
    """Encode a value made of None, bool, int, float, str, bytes, list, tuple, dict."""
    parts = [_VERSION_BYTE]
    _enc(obj, parts, DEFAULT_MAX_DEPTH)
    return b"".join(parts)


def dump_into(obj, out):
    """Append the item bytes of ``obj`` (what ``dumps`` writes after its version byte) to the
    bytearray ``out``: for writers that build one value from parts encoded on their own."""
    parts = []
    _enc(obj, parts, DEFAULT_MAX_DEPTH)
    out += b"".join(parts)


def dump_parts(obj, parts):
    """Append the item bytes of ``obj`` to the list ``parts`` (one bytes object or more):
    ``b"".join(parts)`` is then what ``dump_into`` would have written."""
    _enc(obj, parts, DEFAULT_MAX_DEPTH)


def int_item(obj, _get=_INT_ITEMS.get):
    """The item bytes of the exact int ``obj``."""
    item = _get(obj)
    if item is None:
        if _INT64_MIN <= obj <= _INT64_MAX:
            return _TQ.pack(INT, obj)
        raw = obj.to_bytes((obj.bit_length() + 8) // 8, "big", signed=True)
        return _TU.pack(BIGINT, len(raw)) + raw
    return item


_str_memo = {}                   # short str -> its item bytes: names and small values recur
# encoding: up to 48 bytes (session ids, member names and the envelope's tag recur in every
# message; a hit saves an encode, a pack and a concatenation)
_MEMO_LEN, _MEMO_SIZE = 48, 4096


def _new_str_item(obj, _memo=_str_memo, _heads=_STR_HEADS, _pack=_TU.pack):
    try:
        raw = obj.encode()
    except UnicodeEncodeError:
        raw = obj.encode("utf-8", "surrogatepass")
    n = len(raw)
    item = (_heads[n] if n < 256 else _pack(STR, n)) + raw
    if n <= _MEMO_LEN:
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()
        _memo[obj] = item
    return item


def str_item(obj, _get=_str_memo.get):
    """The item bytes of the (exact) str ``obj``: what ``dump_into`` writes for it."""
    return _get(obj) or _new_str_item(obj)


def _enc(obj, parts, depth, _sget=_str_memo.get, _new_str=_new_str_item, _iget=_INT_ITEMS.get, _tu=_TU.pack,
         _lh=_LIST_HEADS, _dh=_DICT_HEADS):
    kind = type(obj)
    if kind is str:
        parts.append(_sget(obj) or _new_str(obj))
    elif kind is int:
        parts.append(_iget(obj) or int_item(obj))
    elif obj is None:
        parts.append(_NONE_ITEM)
    elif kind is bool:
        parts.append(_TRUE_ITEM if obj else _FALSE_ITEM)
    elif kind is bytes or kind is bytearray or kind is memoryview:
        parts.append(_tu(BYTES, len(obj) if kind is not memoryview else obj.nbytes))
        parts.append(obj if kind is bytes else bytes(obj))
    elif kind is float:
        parts.append(_TD.pack(FLOAT, obj))
    elif kind is dict or kind is list or kind is tuple:
        if depth <= 0:
            raise ValueError("value nested deeper than %d levels" % DEFAULT_MAX_DEPTH)
        depth -= 1
        n = len(obj)
        if kind is dict:
            parts.append(_dh[n] if n < 64 else _tu(DICT, n))
            for key, value in obj.items():
                if type(key) is str:
                    parts.append(_sget(key) or _new_str(key))
                elif not isinstance(key, _KEY_TYPES) or isinstance(key, bool):
                    raise TypeError("dict keys must be str, int or bytes, not %s" % type(key).__name__)
                else:
                    _enc(key, parts, depth)
                _enc(value, parts, depth)
        else:
            if kind is list:
                parts.append(_lh[n] if n < 64 else _tu(LIST, n))
            else:
                parts.append(_TUPLE_HEADS[n] if n < 64 else _tu(TUPLE, n))
            for item in obj:
                # the common scalars inline (a call per item is most of the cost of a short list)
                kind = type(item)
                if kind is str:
                    parts.append(_sget(item) or _new_str(item))
                elif kind is int:
                    parts.append(_iget(item) or int_item(item))
                elif kind is bytes:
                    parts.append(_tu(BYTES, len(item)))
                    parts.append(item)
                elif item is None:
                    parts.append(_NONE_ITEM)
                else:
                    _enc(item, parts, depth)
    elif kind is Encoded:
        parts.append(obj)
    else:
        _enc(_plain(obj), parts, depth)


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


def loads_head(data, n, max_depth=DEFAULT_MAX_DEPTH, max_size=DEFAULT_MAX_SIZE):
    """The first ``n`` items of an encoded list or tuple, and its item count, without decoding the
    rest (which is not checked: ``loads`` does that). ProtocolError as ``loads`` for what it reads,
    and when the value is not a list or tuple of at least ``n`` items."""
    if not isinstance(data, bytes):
        raise TypeError("loads_head() needs bytes, not %s" % type(data).__name__)
    size = len(data)
    if size > max_size:
        raise ProtocolError("encoded value of %d bytes exceeds the maximum %d" % (size, max_size))
    if size < 6:
        raise ProtocolError("encoded value too short (%d bytes)" % size)
    if data[0] != VERSION:
        raise ProtocolError("unknown codec version %d" % data[0])
    if data[1] != LIST and data[1] != TUPLE:
        raise ProtocolError("encoded value is not a list")
    if max_depth <= 0:
        raise ProtocolError("value nested too deeply")
    count, pos = _length(data, 2, size, "container")
    if count < n or count > size - pos:
        raise ProtocolError("list of %d items where at least %d were expected" % (count, n))
    items = []
    for _ in range(n):
        item, pos = _decode(data, pos, size, max_depth - 1)
        items.append(item)
    return items, count


def _length(data, pos, size, what):
    if pos + 4 > size:
        raise ProtocolError("truncated %s length" % what)
    (n,) = _U.unpack_from(data, pos)
    return n, pos + 4


_text_memo = {}                  # short UTF-8 bytes -> the str (decoded dict keys and small values recur)
#: decoding: a hit costs about what decoding a longer string does, so only short ones are kept (the
#: point is sharing the str objects of attribute names and small values that replicas store)
_TEXT_MEMO_LEN = 12
_text_get = _text_memo.get


def _text(raw):
    """The str of UTF-8 ``raw`` (ProtocolError if invalid); short ones are remembered (bounded)."""
    text = _text_memo.get(raw)
    if text is not None:
        return text
    return _new_text(raw)


def _new_text(raw):
    """_text for ``raw`` not in the memo (the inline paths look it up themselves)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        try:
            text = raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise ProtocolError("invalid UTF-8 in a string: %s" % exc) from None
    if len(raw) <= _TEXT_MEMO_LEN:
        if len(_text_memo) >= _MEMO_SIZE:
            _text_memo.clear()
        _text_memo[raw] = text
    return text


def _decode(data, pos, size, depth):
    if pos >= size:
        raise ProtocolError("truncated value")
    tag = data[pos]
    pos += 1
    if tag == LIST or tag == TUPLE or tag == DICT:
        if depth <= 0:
            raise ProtocolError("value nested too deeply")
        if pos + 4 > size:
            raise ProtocolError("truncated container length")
        count = _unpack_u(data, pos)[0]
        pos += 4
        # every item takes at least one byte: a count larger than the input is a lie, not a big list
        if count > size - pos:
            raise ProtocolError("container count %d runs past the input" % count)
        depth -= 1
        if tag == DICT:
            result = {}
            for _ in range(count):
                if pos < size and data[pos] == STR:        # a str key inline, as in lists
                    if pos + 5 > size:
                        raise ProtocolError("truncated string length")
                    n = _unpack_u(data, pos + 1)[0]
                    start = pos + 5
                    pos = start + n
                    if pos > size:
                        raise ProtocolError("string of %d bytes runs past the input" % n)
                    raw = data[start:pos]
                    key = _text_get(raw) if n <= _TEXT_MEMO_LEN else None
                    if key is None:
                        key = _new_text(raw)
                else:
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
            # the common scalars inline (a call per item is most of the cost of a long list),
            # str first, and a known str without a call; the same checks and messages as _decode's
            if pos < size:
                item_tag = data[pos]
                if item_tag == STR or item_tag == BYTES:
                    if pos + 5 > size:
                        raise ProtocolError("truncated string length")
                    n = _unpack_u(data, pos + 1)[0]
                    start = pos + 5
                    pos = start + n
                    if pos > size:
                        raise ProtocolError("string of %d bytes runs past the input" % n)
                    raw = data[start:pos]
                    if item_tag != STR:
                        append(raw)
                    elif n <= _TEXT_MEMO_LEN:
                        text = _text_get(raw)
                        append(_new_text(raw) if text is None else text)
                    else:
                        try:
                            append(raw.decode())
                        except UnicodeDecodeError:
                            append(_new_text(raw))
                    continue
                if item_tag == INT or item_tag == FLOAT:
                    if pos + 9 > size:
                        raise ProtocolError("truncated number")
                    append((_unpack_q if item_tag == INT else _unpack_d)(data, pos + 1)[0])
                    pos += 9
                    continue
                if item_tag == NONE:
                    append(None)
                    pos += 1
                    continue
            item, pos = _decode(data, pos, size, depth)
            append(item)
        return (items if tag == LIST else tuple(items)), pos
    if tag == STR or tag == BYTES or tag == BIGINT:
        if pos + 4 > size:
            raise ProtocolError("truncated string length")
        n = _unpack_u(data, pos)[0]
        pos += 4
        end = pos + n
        if end > size:
            raise ProtocolError("string of %d bytes runs past the input" % n)
        if tag == BYTES:
            return data[pos:end], end
        if tag == STR:
            return _text(data[pos:end]), end
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
    raise ProtocolError("unknown tag 0x%02x" % tag)
