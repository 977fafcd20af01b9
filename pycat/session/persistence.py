"""SESSIONS.ser: StandardManager's file of saved sessions (our own format, not a pickle).

All integers big-endian. The file::

    header   magic  8 bytes  b"PYCATSES"
             version u16     1
             flags   u16     0 (reserved)
             count   u32     number of records written (informational; readers go to EOF)
    records  repeated until end of file:
             mark    4 bytes b"\\xa5SR1"  (lets a reader resynchronise after a damaged length)
             length  u32     payload length
             crc32   u32     zlib.crc32 of the payload
             payload length bytes, a session record:

    session record (the same codec serves the cluster's full-session transfer):
             id_len u16, id (ASCII)
             creation_time f64, last_accessed_time f64, this_accessed_time f64   (epoch seconds)
             max_inactive_interval i32 (seconds, <= 0 never expires)
             flags u8: bit 0 is_new, bit 1 valid
             attr_count u32, then per attribute:
                 name_len u32, name (UTF-8), value_len u32, value (a dill blob)

Values are blobs of pycat.session.values (``dump``/``load``: pickle, dill when pickle cannot);
this module never turns bytes into objects itself, it hands each blob to the ``load`` it is given
(the manager's ``load_value``, which applies the class filter and binds the app's loader). Only
attribute values are blobs: metadata never goes through pickle.
A record whose CRC fails, whose length runs past the end, or whose blob cannot be loaded
(truncated, unknown class) is skipped with a log line and the records after it still load; a
value the load's policy refuses (ValueRefused) costs only that attribute.
The file is written by this node only, which is why it is a trusted source; it is created 0600
(FILE_MODE) whatever the umask, so no other local user can read or replace it.
"""
import logging
import mmap
import os
import struct
import zlib

from pycat.fileutil import atomic_write
from pycat.session.values import ValueRefused
from pycat.session.values import dump as dump_value  # the default for encode_session; bench uses it

log = logging.getLogger(__name__)

MAGIC = b"PYCATSES"
VERSION = 1
RECORD_MARK = b"\xa5SR1"
MAX_RECORD = 1 << 30

_HEADER = struct.Struct(">8sHHI")
_RECORD = struct.Struct(">4sII")
_META = struct.Struct(">dddiBI")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")

FLAG_NEW = 1
FLAG_VALID = 2


class RecordError(ValueError):
    """A session record could not be decoded."""


# -- one session --------------------------------------------------------------------------------
def encode_session(session, dump=dump_value, skip=None):
    """The record bytes of a session. A value ``dump`` refuses is left out; ``skip(name, exc)``
    is told about it (default: a warning naming attribute and type)."""
    sid = session.id.encode("ascii")
    flags = (FLAG_NEW if session.is_new else 0) | (FLAG_VALID if session.valid else 0)
    parts = []
    count = 0
    for name, value in session.raw_attributes().items():
        try:
            blob = dump(value)
        except Exception as exc:
            if skip is not None:
                skip(name, exc)
            else:
                log.warning("session %s: attribute %r (%s) not saved, it cannot be serialised: %s",
                            session.id, name, type(value).__qualname__, exc)
            continue
        raw = name.encode("utf-8")
        parts += (_U32.pack(len(raw)), raw, _U32.pack(len(blob)), blob)
        count += 1
    head = (_U16.pack(len(sid)) + sid
            + _META.pack(session.creation_time, session.last_accessed_time, session.this_accessed_time,
                         _clamp_i32(session.max_inactive_interval), flags, count))
    return head + b"".join(parts)


def decode_session(payload, new_session, load, refused=None):
    """Fill ``new_session()`` (an empty Session) from record bytes; RecordError if malformed.
    ``load(blob)`` turns each value blob into the value. A value it refuses (ValueRefused) is left
    out and ``refused(session_id, name, exc)`` is told (default: a warning). The session is not
    added to any manager and no listener is called."""
    try:
        view = memoryview(payload)
        (id_len,) = _U16.unpack_from(view, 0)
        pos = 2
        sid = bytes(view[pos:pos + id_len]).decode("ascii")
        if len(sid) != id_len:
            raise RecordError("truncated session id")
        pos += id_len
        created, last, this, max_inactive, flags, count = _META.unpack_from(view, pos)
        pos += _META.size
        attributes = {}
        for _ in range(count):
            (n,) = _U32.unpack_from(view, pos)
            name = bytes(view[pos + 4:pos + 4 + n]).decode("utf-8")
            pos += 4 + n
            (n,) = _U32.unpack_from(view, pos)
            blob = view[pos + 4:pos + 4 + n]
            if len(blob) != n:
                raise RecordError("attribute %r: truncated value" % name)
            pos += 4 + n
            try:
                attributes[name] = load(bytes(blob))
            except ValueRefused as exc:
                if refused is not None:
                    refused(sid, name, exc)
                else:
                    log.warning("session %s: attribute %r not loaded: %s", sid, name, exc)
            except Exception as exc:
                raise RecordError("attribute %r: %s: %s" % (name, type(exc).__name__, exc)) from exc
        if pos != len(view):
            raise RecordError("%d unexpected bytes after the last attribute" % (len(view) - pos))
    except (struct.error, UnicodeDecodeError) as exc:
        raise RecordError("malformed record: %s" % exc) from exc
    session = new_session()
    session.id = sid
    session.creation_time, session.last_accessed_time, session.this_accessed_time = created, last, this
    session.max_inactive_interval = max_inactive
    session.is_new = bool(flags & FLAG_NEW)
    session.valid = bool(flags & FLAG_VALID)
    session.raw_attributes().update(attributes)
    return session


def _clamp_i32(value):
    return max(-(1 << 31), min((1 << 31) - 1, int(value)))


# -- the file -----------------------------------------------------------------------------------
def write_records(fileobj, records, count):
    """Write header and records (an iterable of payload bytes) to a binary file object."""
    fileobj.write(_HEADER.pack(MAGIC, VERSION, 0, count))
    for payload in records:
        fileobj.write(_RECORD.pack(RECORD_MARK, len(payload), zlib.crc32(payload)))
        fileobj.write(payload)


#: permission bits of every file holding session data (SESSIONS.ser, FileStore records): the
#: owner only, whatever the process umask (a session holds logins and whatever the app put in it,
#: and its values are pickles: whoever can write them can run code in the next node that loads them)
FILE_MODE = 0o600
#: and of the folders pycat creates for them
DIR_MODE = 0o700


def save_file(path, records, count):
    """Atomically replace ``path`` (temp file beside it, fsync, rename, fsync the folder).
    The file is created FILE_MODE (0600) from the start: no moment with wider bits."""
    with atomic_write(path, "wb", fsync=True, fsync_dir=True, buffering=1 << 20, perms=FILE_MODE) as f:
        write_records(f, records, count)


def iter_records(data, source="sessions file"):
    """Yield each intact record payload of a whole file (bytes or mmap). Damage is logged and
    skipped: a bad length or CRC makes the reader hunt for the next record mark.
    Raises RecordError (from check_header, before yielding) if the header is not ours."""
    check_header(data, source)
    pos, end = _HEADER.size, len(data)
    while pos < end:
        problem = None
        if end - pos < _RECORD.size:
            problem = "truncated record header"
        else:
            mark, length, crc = _RECORD.unpack_from(data, pos)
            body = pos + _RECORD.size
            if mark != RECORD_MARK:
                problem = "no record mark"
            elif length > MAX_RECORD or body + length > end:
                problem = "record length %d runs past the end" % length
            else:
                payload = data[body:body + length]
                if zlib.crc32(payload) != crc:
                    problem = "checksum mismatch"
                else:
                    yield payload
                    pos = body + length
                    continue
        log.error("%s: damaged record at offset %d (%s); skipping it", source, pos, problem)
        nxt = data.find(RECORD_MARK, pos + 1)
        if nxt < 0:
            return
        pos = nxt


def check_header(data, source="sessions file"):
    """The record count the header announces; RecordError if the header is not ours."""
    if len(data) < _HEADER.size:
        raise RecordError("%s: too short for a header" % source)
    magic, version, _flags, count = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise RecordError("%s: not a pycat sessions file (bad magic)" % source)
    if version != VERSION:
        raise RecordError("%s: unsupported version %d (this pycat reads %d)" % (source, version, VERSION))
    return count


def open_file(path):
    """(data, closer): the file's bytes, memory-mapped when non-empty."""
    f = open(path, "rb")
    try:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            f.close()
            return b"", lambda: None
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except BaseException:
        f.close()
        raise

    def close():
        m.close()
        f.close()
    return m, close
