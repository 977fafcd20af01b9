"""WAR files: context names, safe expansion, and building a WAR from a folder (``pycat war``).

A WAR is a zip of an application folder: ``WEB-INF/web.xml``, ``WEB-INF/classes/`` (Python
modules), ``WEB-INF/lib/`` (wheels/zips), static files, optional ``META-INF/context.xml``.

Names follow Tomcat's ContextName: the file or folder base name gives the context path and
version. ``ROOT`` -> ``""``; ``#`` -> ``/`` (``a#b`` -> ``/a/b``); ``##`` starts a version
(``app##2`` -> path ``/app`` version ``2``). The context *name* is ``path##version`` (just the
path without a version); the base name is the reverse mapping used for files in appBase.

Expansion (``safe_unpack``) refuses the whole archive -- nothing is written to the target -- when:
an entry name is absolute (``/x``, ``\\x``, ``C:x``) or has a ``..`` segment (zip-slip); an entry
is a symbolic link (Unix mode bits in the external attributes); the sum of the declared
uncompressed sizes passes ``max_size``; or, while writing, the bytes actually inflated pass it
(a lying header). Entries are written into a temporary sibling folder that is renamed into place
only when everything succeeded.
"""
import logging
import os
import re
import shutil
import stat
import zipfile

from pycat.errors import DeployError
from pycat.fileutil import atomic_write
from pycat.webapp.cooperate import cooperate

log = logging.getLogger(__name__)

DEFAULT_MAX_EXPANDED_SIZE = 512 * 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


class ContextName:
    """A web application's path, version, name (``path##version``) and base name (``a#b##2``)."""

    __slots__ = ("path", "version", "name", "base_name")

    def __init__(self, path, version=""):
        path = "" if path in ("", "/") else "/" + path.strip("/")
        self.path = path
        self.version = version or ""
        self.name = path + ("##" + self.version if self.version else "")
        base = path[1:].replace("/", "#") if path else "ROOT"
        self.base_name = base + ("##" + self.version if self.version else "")

    @classmethod
    def from_base_name(cls, base):
        """``ROOT``, ``a#b``, ``app##2``, ``foo.war`` (the extension is dropped)."""
        if base.lower().endswith((".war", ".xml")):
            base = base[:-4]
        stem, _, version = base.partition("##")
        if stem in ("ROOT", ""):
            return cls("", version)
        return cls("/" + stem.replace("#", "/"), version)

    @property
    def display(self):
        return (self.path or "/") + ("##" + self.version if self.version else "")

    def __eq__(self, other):
        return isinstance(other, ContextName) and other.name == self.name

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return "ContextName(%r)" % self.name


def version_key(version):
    """Order of ## versions: numeric parts compare as numbers ("10" > "9"), others as text."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", version or "") if p]


# -- expansion ---------------------------------------------------------------------------------
def _entry_problem(info):
    name = info.filename
    if not name:
        return "an entry has an empty name"
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "entry %r has an absolute path" % name
    parts = re.split(r"[/\\]", name)
    if ".." in parts:
        return "entry %r escapes the application folder (..)" % name
    if "\x00" in name:
        return "entry %r has a NUL in its name" % name
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_ISLNK(mode):
        return "entry %r is a symbolic link" % name
    return None


def check_archive(zf, max_size=DEFAULT_MAX_EXPANDED_SIZE):
    """Raise DeployError if any entry is unsafe or the declared expanded size passes max_size."""
    total = 0
    for info in zf.infolist():
        problem = _entry_problem(info)
        if problem:
            raise DeployError(problem)
        total += info.file_size
        if max_size is not None and max_size >= 0 and total > max_size:
            raise DeployError("expanded size passes the limit of %d bytes (maxExpandedSize)" % max_size)
    return total


def safe_unpack(war_path, dest, max_size=DEFAULT_MAX_EXPANDED_SIZE):
    """Expand ``war_path`` into the folder ``dest`` (which must not exist). DeployError on any
    problem, with nothing left behind."""
    tmp = "%s.unpacking-%d" % (dest, os.getpid())
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(war_path) as zf:
            check_archive(zf, max_size)
            os.makedirs(tmp)
            root = os.path.realpath(tmp)
            written = 0
            for info in zf.infolist():
                target = os.path.realpath(os.path.join(root, *re.split(r"[/\\]", info.filename)))
                if target != root and not target.startswith(root + os.sep):
                    raise DeployError("entry %r escapes the application folder" % info.filename)
                cooperate()
                if info.is_dir():
                    os.makedirs(target, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    while True:
                        block = src.read(65536)
                        if not block:
                            break
                        written += len(block)
                        if max_size is not None and max_size >= 0 and written > max_size:
                            raise DeployError("expanded size passes the limit of %d bytes "
                                              "(maxExpandedSize)" % max_size)
                        out.write(block)
        if os.path.exists(dest):
            raise DeployError("%s already exists" % dest)
        os.rename(tmp, dest)
    except DeployError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DeployError("%s is not a valid WAR (zip): %s" % (os.path.basename(war_path), exc)) from None
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DeployError("cannot expand %s: %s" % (os.path.basename(war_path), exc)) from None
    return dest


# -- building ----------------------------------------------------------------------------------
_SKIP_DIRS = {"__pycache__", ".git", ".hg", ".svn"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


def build_war(folder, out_path):
    """Zip an application folder into a WAR (deterministic order; no bytecode caches, no VCS
    folders; symbolic links are refused, as the deployer would refuse them). Returns the entry count."""
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        raise DeployError("%s is not a folder" % folder)
    if not os.path.isfile(os.path.join(folder, "WEB-INF", "web.xml")):
        log.warning("%s has no WEB-INF/web.xml; the WAR will only serve static files", folder)
    out_path = os.path.abspath(out_path)
    count = 0
    with atomic_write(out_path, "wb") as out, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
            rel_dir = os.path.relpath(dirpath, folder)
            for d in dirnames:
                if os.path.islink(os.path.join(dirpath, d)):
                    raise DeployError("%s is a symbolic link" % os.path.join(rel_dir, d))
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                if name.endswith(_SKIP_SUFFIXES) or full == out_path or full == out.name:
                    continue
                if os.path.islink(full):
                    raise DeployError("%s is a symbolic link" % os.path.relpath(full, folder))
                arc = os.path.relpath(full, folder).replace(os.sep, "/")
                zf.write(full, arc)
                count += 1
    return count
