"""FileStore: one file per session in a directory (Tomcat's org.apache.catalina.session.FileStore).

File ``<directory>/<session id>.session``::

    magic   8 bytes  b"PYCATSF1"
    crc32   u32      big-endian zlib.crc32 of the payload
    payload          a session record of persistence.encode_session

Files are written to a temp name in the same directory and renamed over the target, so a reader
(another node sharing the directory) sees the old record or the new one, never half. Like
Tomcat's FileStore we do not fsync by default: a killed process loses nothing (the page cache
keeps what was written); ``fsync="true"`` also survives an OS crash, at a disk flush per write.
Ids are validated (``[A-Za-z0-9]`` plus an optional ``.route``) before any path is built, so a
forged id cannot name a file outside the directory. A file that fails its magic, CRC or decode
is renamed to ``<id>.session.corrupt`` and logged; the other sessions are unaffected.

Files are created 0600 and a folder pycat creates 0700, whatever the process umask: the records
hold pickled values, which run code when loaded, so only the nodes' user may write them. A folder
shared between nodes must be writable by that user alone (or set the manager's
``sessionAttributeValueClassNameFilter``, which refuses any class it does not name; see persistent.py).
"""
import logging
import os
import struct
import time
import zlib

from pycat.attrs import Attr
from pycat.fileutil import atomic_write, sync_dir
from pycat.session import persistence
from pycat.session.id_generator import parse_session_id
from pycat.session.store import Store

log = logging.getLogger(__name__)

FILE_EXT = ".session"
MAGIC = b"PYCATSF1"
_CRC = struct.Struct(">I")
_HEAD = len(MAGIC) + _CRC.size
STALE_TEMP_SECONDS = 3600


class CorruptFile(ValueError):
    pass


def wrap(payload):
    return MAGIC + _CRC.pack(zlib.crc32(payload)) + payload


def unwrap(data):
    if len(data) < _HEAD or data[:len(MAGIC)] != MAGIC:
        raise CorruptFile("not a pycat session file (bad magic)")
    (crc,) = _CRC.unpack_from(data, len(MAGIC))
    payload = data[_HEAD:]
    if zlib.crc32(payload) != crc:
        raise CorruptFile("checksum mismatch (truncated or damaged)")
    return payload


class FileStore(Store):
    directory = Attr(str, "sessions", "folder of session files; relative paths resolve against the "
                                      "context's work directory. Share it between nodes for failover")
    fsync = Attr(bool, False, "fsync each file before the rename: survives an OS crash or power loss, "
                              "at the cost of a disk flush per write (a killed process loses nothing either way)")

    def directory_path(self):
        d = self.directory or "sessions"
        if not os.path.isabs(d):
            base = getattr(self.manager, "work_dir", None) or os.getcwd()
            d = os.path.join(base, d)
        return d

    def _start(self):
        # a folder we create is the owner's only; an existing one (shared between nodes, made by
        # the admin) keeps its bits: the files in it are 0600 anyway
        os.makedirs(self.directory_path(), mode=persistence.DIR_MODE, exist_ok=True)

    def _path(self, session_id):
        # parse_session_id allows only letters, digits, one dot, '_' and '-' in the route: the
        # result stays inside the directory (and is never "." or "..")
        if parse_session_id(session_id) is None:
            raise ValueError("malformed session id %r" % (session_id,))
        return os.path.join(self.directory_path(), session_id + FILE_EXT)

    def _read(self, session_id):
        path = self._path(session_id)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        try:
            return unwrap(data)
        except CorruptFile as exc:
            log.error("%s: %s: %s; skipped", self.component_name, path, exc)
            self._quarantine(session_id, str(exc))
            return None

    def save_all(self, sessions):
        count = 0
        for session, payload in self._encoded(sessions):
            self._write(session.id, payload, session, sync=False)
            count += 1
        if count and self.fsync:
            sync_dir(self.directory_path())
        return count

    def _write(self, session_id, payload, session, sync=None):
        path = self._path(session_id)
        os.makedirs(os.path.dirname(path), mode=persistence.DIR_MODE, exist_ok=True)
        # a random temp name: writers on other hosts (a shared folder) never share one; created
        # 0600 whatever the umask (the record holds pickled values: see the module doc)
        with atomic_write(path, "wb", fsync=self.fsync if sync is None else sync, unique=True,
                          perms=persistence.FILE_MODE) as f:
            f.write(wrap(payload))

    def process_expires(self):
        removed = super().process_expires()
        self._remove_stale_temp_files()
        return removed

    def _remove_stale_temp_files(self):
        """Temp files of writers that died mid-write (never renamed): gone after an hour."""
        directory = self.directory_path()
        try:
            names = [n for n in os.listdir(directory) if n.endswith(".tmp")]
        except OSError:
            return
        limit = time.time() - STALE_TEMP_SECONDS
        for name in names:
            path = os.path.join(directory, name)
            try:
                if os.stat(path).st_mtime < limit:
                    os.unlink(path)
            except OSError:
                pass

    def _delete(self, session_id):
        try:
            os.unlink(self._path(session_id))
        except FileNotFoundError:
            pass

    def _ids(self):
        try:
            names = os.listdir(self.directory_path())
        except FileNotFoundError:
            return []
        ids = []
        for name in names:
            if name.endswith(FILE_EXT):
                sid = name[:-len(FILE_EXT)]
                if parse_session_id(sid) is not None:
                    ids.append(sid)
        return ids

    def _quarantine(self, session_id, reason):
        path = self._path(session_id)
        try:
            os.replace(path, path + ".corrupt")
            log.error("%s: damaged session file kept as %s.corrupt (%s)", self.component_name, path, reason)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("%s: could not move %s aside: %s", self.component_name, path, exc)
