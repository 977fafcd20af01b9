"""File helpers for every layer (layer 1: imports nothing of pycat).

``atomic_write`` is the one way pycat replaces a file (sessions files, FileStore records, the pid
file, the deploy channel's token file, uploaded and built WARs): the content goes to a temp file
beside the target and is renamed over it, so a reader (another process, another node on a shared
folder) sees the old content or the new one, never half of it. A failure removes the temp file.

``remove_inside`` is the one way the deployer removes a file or a folder tree: only when its
resolved path lies strictly inside a folder the caller owns (appBase, the Host's work folder), so
a bad name or a symbolic link can never make it remove the folder itself, its parent or anything
elsewhere.

``signature``, ``tree_signature`` and ``StableFiles`` are how a watcher tells that a file or a
tree changed, and that a file being copied in is complete (its signature held still between two
looks): HostConfig watches appBase with them, and a farm deployer watching a folder of WARs needs
the same, so they live here rather than in the deployer.
"""
import contextlib
import errno
import logging
import os
import secrets
import shutil
import stat

log = logging.getLogger(__name__)


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
        with open(tmp, mode, buffering, opener=lambda p, flags: _open_narrowed(p, flags, perms)) as f:
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


def _open_narrowed(path, flags, perms):
    """os.open(path, flags, perms), and the file's mode never wider than ``perms``: ``perms`` only
    applies to a file the call creates, and a temp file left by a writer that died (same pid after
    a restart, as in a container) keeps its old bits -- a 0644 leftover would make a secret
    world-readable. A fresh file is unchanged (it has perms minus the umask already)."""
    fd = os.open(path, flags, perms)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & ~perms:
            os.fchmod(fd, mode & perms)
    except BaseException:
        os.close(fd)
        raise
    return fd


def resolve_inside(path, roots):
    """The resolved ``path`` if it lies strictly inside one of the resolved ``roots`` (a root
    itself does not count), else None. A symbolic link resolves to its own place (its folder
    resolved, its name kept): removing a link must remove the link, not what it points to."""
    if os.path.islink(path):
        resolved = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    else:
        resolved = os.path.realpath(path)
    for root in roots:
        if root:
            prefix = os.path.join(os.path.realpath(root), "")
            if resolved.startswith(prefix) and len(resolved) > len(prefix):
                return resolved
    return None


def remove_inside(path, roots, run=None):
    """Remove the file or folder tree ``path``, only if its resolved path lies strictly inside
    one of ``roots``; else refuse, log an error and return False. True once ``path`` is gone (or
    was absent). ``run(func, args)`` calls the blocking removal (e.g. in a thread pool, so hundreds
    of unlinks do not stall a gevent hub); default: a direct call."""
    if not os.path.lexists(path):
        return True
    resolved = resolve_inside(path, roots)
    if resolved is None:
        log.error("Refusing to remove %s: it resolves to %s, which is not strictly inside %s",
                  path, os.path.realpath(path), " or ".join(str(r) for r in roots if r))
        return False
    # the removal acts on the very path that was checked, not on the name again
    if os.path.isdir(resolved) and not os.path.islink(resolved):
        func, args = shutil.rmtree, (resolved, True)
    else:
        func, args = _unlink_quietly, (resolved,)
    if run is None:
        func(*args)
    else:
        run(func, args)
    if os.path.lexists(resolved):
        log.warning("Could not remove all of %s", resolved)
        return False
    return True


def _unlink_quietly(path):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


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


# -- change detection ------------------------------------------------------------------------------
def signature(path):
    """(mtime_ns, size) of a file; ("dir",) for a folder (only its existence counts); None if absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return ("dir",)
    return (st.st_mtime_ns, st.st_size)


def tree_signature(folder):
    """The signature of every file under ``folder``, as sorted ((relative path, signature), ...):
    any file added, removed or rewritten changes it. Bytecode caches (``__pycache__``, ``.pyc``)
    are left out: importing the code writes them, which is not a change of the code."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")):
                continue
            full = os.path.join(dirpath, name)
            out.append((os.path.relpath(full, folder), signature(full)))
    return tuple(out)


class StableFiles:
    """Which files have stopped changing: ``stable(path)`` is True when the file shows the same
    signature as at the previous call for it (and then forgets it), so a file still being copied
    in, which grows between two looks, is never taken half-written. Missing files are never
    stable."""

    def __init__(self):
        self._seen = {}      # path -> signature at the previous look

    def stable(self, path):
        now = signature(path)
        if now is not None and self._seen.get(path) == now:
            del self._seen[path]
            return True
        self._seen[path] = now
        return False

    def forget(self, path):
        """Start over for ``path``: its next look only records it."""
        self._seen.pop(path, None)

    def clear(self):
        self._seen.clear()

    def __contains__(self, path):
        return path in self._seen


def place_file(source, target, move=False):
    """Put the file ``source`` at ``target`` in one step a scan can never see half done: renamed
    when ``move`` and both lie on one file system, else copied to a hidden temp name beside
    ``target`` and renamed over it (then ``source`` is removed when ``move``). ``source`` is
    always a file the caller made itself (a finished farm transfer in tempDir, a manager upload),
    never a name from a peer or a request."""
    if move:
        try:
            os.replace(source, target)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
    with open(source, "rb") as src, atomic_write(target, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    if move:
        os.unlink(source)
