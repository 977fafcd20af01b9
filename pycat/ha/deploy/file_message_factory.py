"""WAR transfers cut into chunks and put back together (Tomcat's FileMessageFactory), no sockets.

Sending: ``file_digest`` reads a file once for its SHA-256 and size; ``read_chunks`` then yields
``(offset, data)`` slices of at most ``chunk_size`` bytes, reading one slice at a time, so a
sender holds one chunk of a WAR however large the WAR is.

Receiving: ``Transfers`` is the table of transfers under way on this node, keyed by (sender
member, transfer id). Each one is a ``FileReceiver`` writing into a file of its own in tempDir
and hashing the bytes as they are written. Chunks must come in order (the sender waits for each
chunk's acknowledgement before it sends the next): a chunk already written is a duplicate and is
ignored; one past the next expected offset means something was lost, and the transfer is given
up. Every chunk must repeat the first one's WAR name, size, checksum and version; a chunk that
does not is refused (forged, or from a confused sender). When the last byte is written the
digest is compared with the announced one before anything is deployed.

Bounds: at most ``max_transfers`` transfers at once, at most ``max_size`` bytes each, and one
chunk in memory at a time; a transfer that received nothing for ``max_valid_time`` seconds is
dropped with its file (``expire``, called from the deployer's background step). Files are named
by this node (``<war>.<n>.farm-part``), never by anything a peer chose, and each path is checked
to resolve inside tempDir before it is created.
"""
import hashlib
import itertools
import logging
import os
import time

from pycat.fileutil import remove_inside, resolve_inside

log = logging.getLogger(__name__)

PART_SUFFIX = ".farm-part"
READ_SIZE = 1024 * 1024


class TransferError(Exception):
    """A transfer is refused or given up; the message says why (it goes back in an abort)."""


def file_digest(path, block=READ_SIZE):
    """(sha256 digest bytes, size) of the file at ``path``, read ``block`` bytes at a time."""
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while True:
            data = fh.read(block)
            if not data:
                break
            sha.update(data)
            size += len(data)
    return sha.digest(), size


def read_chunks(fh, size, chunk_size):
    """Yield (offset, data) for the first ``size`` bytes of the open file ``fh``: one slice read
    per step. A file that ends early raises TransferError (it changed under the sender)."""
    offset = 0
    fh.seek(0)
    while offset < size:
        data = fh.read(min(chunk_size, size - offset))
        if not data:
            raise TransferError("the file ended at %d of %d bytes" % (offset, size))
        yield offset, data
        offset += len(data)
    if size == 0:
        yield 0, b""


class FileReceiver:
    """One WAR arriving: its announced name, size, checksum and version, and its file in tempDir."""

    def __init__(self, key, chunk, path, now):
        self.key = key
        self.war, self.size, self.sha256, self.stamp = chunk.war, chunk.size, chunk.sha256, chunk.stamp
        self.origin = chunk.origin
        self.path = path
        self.received = 0
        self.started = self.last = now
        self._hash = hashlib.sha256()
        # O_EXCL: the name is ours and new; never write through something already there
        self._fh = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")

    @property
    def complete(self):
        return self.received == self.size

    def add(self, chunk, now):
        """Write ``chunk``; True once the whole file is written and its checksum matched.
        TransferError when the chunk does not belong (the caller drops the transfer)."""
        if (chunk.war, chunk.size, chunk.sha256, chunk.stamp, chunk.origin) != \
                (self.war, self.size, self.sha256, self.stamp, self.origin):
            raise TransferError("a chunk of transfer %s does not match its first chunk (name, size, "
                                "checksum or version differ): forged or corrupted" % (self.key[1],))
        if chunk.offset + len(chunk.data) <= self.received and (chunk.data or self.size):
            log.warning("Farm: duplicate chunk at offset %d of %s ignored", chunk.offset, self.war)
            return False
        if chunk.offset != self.received:
            raise TransferError("chunk at offset %d of %s, expected %d: a chunk was lost"
                                % (chunk.offset, self.war, self.received))
        self._fh.write(chunk.data)
        self._hash.update(chunk.data)
        self.received += len(chunk.data)
        self.last = now
        if not self.complete:
            return False
        self._fh.close()
        if self._hash.digest() != self.sha256:
            raise TransferError("checksum mismatch for %s: the %d bytes received do not have the announced "
                                "SHA-256 (forged or corrupted chunk)" % (self.war, self.size))
        return True

    def close(self):
        if not self._fh.closed:
            self._fh.close()


class Transfers:
    """The transfers under way on one node (see the module docstring for the bounds)."""

    def __init__(self, temp_dir, max_transfers=4, max_size=1 << 30, max_valid_time=300, clock=time.monotonic):
        self.temp_dir = temp_dir
        self.max_transfers = max_transfers
        self.max_size = max_size
        self.max_valid_time = max_valid_time
        self.clock = clock
        self._active = {}                     # (sender name, transfer id) -> FileReceiver
        self._serial = itertools.count(1)

    def __len__(self):
        return len(self._active)

    def __contains__(self, key):
        return key in self._active

    def chunk(self, sender, chunk):
        """Take one Chunk from ``sender`` (a member name). Returns the FileReceiver once its file is
        complete and verified (it is no longer in the table: the caller owns its file), else None.
        TransferError if the chunk is refused; the transfer (if any) is dropped with its file."""
        key = (sender, chunk.transfer)
        now = self.clock()
        receiver = self._active.get(key)
        if receiver is None:
            receiver = self._open(key, chunk, now)
        try:
            done = receiver.add(chunk, now)
        except (TransferError, OSError) as exc:
            self.drop(key)
            if isinstance(exc, OSError):
                raise TransferError("writing %s failed: %s" % (receiver.path, exc)) from None
            raise
        if done:
            del self._active[key]
            return receiver
        return None

    def _open(self, key, chunk, now):
        if chunk.offset != 0:
            raise TransferError("transfer %s of %s starts at offset %d, not 0 (its start was missed)"
                                % (key[1], chunk.war, chunk.offset))
        if self.max_size >= 0 and chunk.size > self.max_size:
            raise TransferError("%s is %d bytes, more than the %d this node takes (maxWarSize)"
                                % (chunk.war, chunk.size, self.max_size))
        if len(self._active) >= self.max_transfers:
            raise TransferError("%d transfers are already under way (maxConcurrentTransfers)" % len(self._active))
        os.makedirs(self.temp_dir, exist_ok=True)
        path = os.path.join(self.temp_dir, "%s.%d.%d%s" % (chunk.war, os.getpid(), next(self._serial), PART_SUFFIX))
        if resolve_inside(path, [self.temp_dir]) is None:
            raise TransferError("%s would not lie inside tempDir %s" % (path, self.temp_dir))
        receiver = self._active[key] = FileReceiver(key, chunk, path, now)
        return receiver

    def drop(self, key):
        """Forget a transfer and remove its file; the FileReceiver, or None if unknown."""
        receiver = self._active.pop(key, None)
        if receiver is not None:
            receiver.close()
            remove_inside(receiver.path, [self.temp_dir])
        return receiver

    def expire(self):
        """Drop the transfers that received nothing for ``max_valid_time`` seconds (negative:
        never); returns them."""
        if self.max_valid_time < 0:
            return []
        limit = self.clock() - self.max_valid_time
        return [self.drop(key) for key, r in list(self._active.items()) if r.last < limit]

    def clear(self):
        for key in list(self._active):
            self.drop(key)

    def sweep(self):
        """Remove part files a previous run of this node left in tempDir (it died mid-transfer)."""
        try:
            names = os.listdir(self.temp_dir)
        except OSError:
            return 0
        gone = 0
        mine = {os.path.basename(r.path) for r in self._active.values()}
        for name in names:
            if name.endswith(PART_SUFFIX) and name not in mine:
                gone += remove_inside(os.path.join(self.temp_dir, name), [self.temp_dir])
        return gone
