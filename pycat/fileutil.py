"""File helpers for every layer (layer 1: imports nothing of pycat).

``atomic_write`` is the one way pycat replaces a file (sessions files, FileStore records, the pid
file, the deploy channel's token file, uploaded and built WARs): the content goes to a temp file
beside the target and is renamed over it, so a reader (another process, another node on a shared
folder) sees the old content or the new one, never half of it. A failure removes the temp file.
"""
import contextlib
import os
import secrets


def temp_path(path, unique=False):
    """The temp name ``atomic_write`` uses beside ``path``: ``.<name>.<tag>.tmp``.

    The leading dot keeps deployers and scanners away from it (a half-written WAR in appBase is
    ignored); the ``.tmp`` ending lets a sweeper find leftovers of a writer that died mid-write.
    The tag is the pid, or with ``unique`` random bytes: writers on other hosts sharing the
    folder may have the same pid."""
    head, tail = os.path.split(path)
    tag = secrets.token_hex(6) if unique else str(os.getpid())
    return os.path.join(head, ".%s.%s.tmp" % (tail, tag))


@contextlib.contextmanager
def atomic_write(path, mode="wb", *, fsync=False, fsync_dir=False, unique=False, perms=0o666,
                 buffering=-1):
    """Yield a file object open on a temp file; when the block ends without error, rename it
    over ``path``.

    fsync: flush the file to disk before the rename (survives an OS crash, costs a disk flush).
    fsync_dir: also fsync the folder after the rename, so the rename itself is durable.
    unique: random temp suffix instead of the pid (for folders shared between hosts).
    perms: the new file's permission bits (before the umask), e.g. 0o600 for a secret.
    The yielded file's ``name`` is the temp path (so a writer walking the folder can skip it)."""
    tmp = temp_path(path, unique)
    try:
        with open(tmp, mode, buffering, opener=lambda p, flags: os.open(p, flags, perms)) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync_dir:
        sync_dir(os.path.dirname(os.path.abspath(path)))


def sync_dir(path):
    """fsync a folder (makes renames and creations in it durable); best effort: some file
    systems and platforms cannot open or fsync a folder, which is not an error here."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
