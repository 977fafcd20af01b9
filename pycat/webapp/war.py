"""WAR files: context names, safe expansion, and building a WAR from a folder (``pycat war``).

A WAR is a zip of an application folder: ``WEB-INF/web.xml``, ``WEB-INF/classes/`` (Python
modules), ``WEB-INF/lib/`` (wheels/zips), static files, optional ``META-INF/context.xml``.

Names follow Tomcat's ContextName: the file or folder base name gives the context path and
version. ``ROOT`` -> ``""``; ``#`` -> ``/`` (``a#b`` -> ``/a/b``); ``##`` starts a version
(``app##2`` -> path ``/app`` version ``2``). The context *name* is ``path##version`` (just the
path without a version); the base name is the reverse mapping used for files in appBase.

``parse_context_name`` is the strict form every name from outside goes through (appBase entries,
descriptors, the deploy channel): a name is refused when a path segment is empty, ``.`` or ``..``,
when it or its version holds a ``/``, a ``\\`` or a NUL, when its folder name would start with
"." (pycat's own working folders), or when it does not map back to itself (``a#.war`` would be
expanded into the folder of ``/a``, ``/ROOT`` into ROOT's). The base name of an accepted name is
always one plain folder name inside appBase; ``#..war`` once made a failed deploy remove
``webapps/..``, i.e. the whole CATALINA_BASE.

Expansion (``safe_unpack``) refuses the whole archive -- nothing is written to the target -- when:
an entry name is absolute (``/x``, ``\\x``, ``C:x``) or has a ``..`` segment (zip-slip); an entry
is a symbolic link (Unix mode bits in the external attributes); the archive has more than
``max_entries`` entries (Host ``maxExpandedEntries``: tiny or empty entries pass any size limit
but each one is a file to create); the sum of the declared uncompressed sizes passes ``max_size``;
or, while writing, the bytes actually inflated pass it (a lying header). Entries are written into
a temporary sibling folder that is renamed into place only when everything succeeded.
"""
import logging
import os
import re
import stat
import struct
import zipfile

from pycat.errors import DeployError
from pycat.fileutil import atomic_write, remove_inside
from pycat.webapp.cooperate import cooperate

log = logging.getLogger(__name__)

DEFAULT_MAX_EXPANDED_SIZE = 512 * 1024 * 1024
# A WAR that carries Django unpacked in WEB-INF/classes has ~6,100 entries (its locale files are
# half of them); 20,000 leaves room for a few such frameworks beside the app, while the 30,000+
# entry archives of an inode-exhaustion attempt are refused before the first file is created.
# Libraries shipped the intended way, as wheels in WEB-INF/lib, are one entry each.
DEFAULT_MAX_EXPANDED_ENTRIES = 20000
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

    @classmethod
    def parse(cls, text):
        """The strict form of a name from outside; see ``parse_context_name``."""
        return parse_context_name(text)

    @property
    def display(self):
        return (self.path or "/") + ("##" + self.version if self.version else "")

    def __eq__(self, other):
        return isinstance(other, ContextName) and other.name == self.name

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return "ContextName(%r)" % self.name


def _name_problem(text):
    """Why ``text`` cannot name a web application, or None (see parse_context_name)."""
    if not isinstance(text, str) or not text:
        return "a context name is required"
    if "\x00" in text:
        return "it holds a NUL"
    if text.startswith("/"):                     # a context name: /a/b##2 (or "/" for ROOT)
        path, marker, version = text.partition("##")
        segments = [] if path == "/" else path[1:].split("/")
    else:                                        # a base name: a#b##2, a#b##2.war, ROOT.xml
        if "/" in text:
            return "it holds a '/' (write /a/b or a#b)"
        base = text[:-4] if text.lower().endswith((".war", ".xml")) else text
        stem, marker, version = base.partition("##")
        segments = [] if stem == "ROOT" else stem.split("#")
    for segment in segments:
        if segment in ("", ".", ".."):
            return "path segment %r is not allowed" % segment if segment else "it has an empty path segment"
        if "\\" in segment:
            return "path segment %r holds a '\\'" % segment
    if marker and not version:
        return "the version after ## is empty"
    if "/" in version or "\\" in version:
        return "version %r holds a path separator" % version
    return None


def parse_context_name(text):
    """``text`` -- a file or folder name in appBase (``a#b##2.war``), a base name (``app##2``,
    ``ROOT``) or a context name (``/a/b##2``, ``/``) -- as a ContextName; DeployError("invalid
    context name ...") if it cannot name an app (see the module docstring)."""
    problem = _name_problem(text)
    if problem is None:
        if text.startswith("/"):
            path, _, version = text.partition("##")
            cname = ContextName(path, version)
        else:
            cname = ContextName.from_base_name(text)
        if cname.base_name.startswith("."):
            problem = "its folder name %r would be hidden (pycat's working folders start with '.')" \
                % cname.base_name
        elif ContextName.from_base_name(cname.base_name) != cname:
            problem = "its folder name %r belongs to %s" % (
                cname.base_name, ContextName.from_base_name(cname.base_name).display)
        else:
            return cname
    raise DeployError("invalid context name %r: %s" % (text, problem))


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


def _limited(limit):
    return limit is not None and limit >= 0


def declared_entries(fp):
    """The entry count the end-of-central-directory record of the open zip ``fp`` declares, or
    None if it cannot be read (zipfile then reports the real problem). Read before ZipFile parses
    the central directory, which costs memory per entry."""
    end_record = getattr(zipfile, "_EndRecData", None)    # private, but in every CPython 3
    index = getattr(zipfile, "_ECD_ENTRIES_TOTAL", None)
    if end_record is None or index is None:
        return None
    try:
        record = end_record(fp)
    except (OSError, ValueError, EOFError, struct.error):
        return None
    return record[index] if record else None


def _too_many(count, max_entries):
    return DeployError("the archive has %d entries, more than the limit of %d (maxExpandedEntries)"
                       % (count, max_entries))


def check_archive(zf, max_size=DEFAULT_MAX_EXPANDED_SIZE, max_entries=DEFAULT_MAX_EXPANDED_ENTRIES):
    """Raise DeployError if any entry is unsafe, there are more than max_entries entries, or the
    declared expanded size passes max_size."""
    infos = zf.infolist()
    if _limited(max_entries) and len(infos) > max_entries:
        raise _too_many(len(infos), max_entries)
    total = 0
    for info in infos:
        problem = _entry_problem(info)
        if problem:
            raise DeployError(problem)
        total += info.file_size
        if _limited(max_size) and total > max_size:
            raise DeployError("expanded size passes the limit of %d bytes (maxExpandedSize)" % max_size)
    return total


def safe_unpack(war_path, dest, max_size=DEFAULT_MAX_EXPANDED_SIZE, max_entries=DEFAULT_MAX_EXPANDED_ENTRIES):
    """Expand ``war_path`` into the folder ``dest`` (which must not exist). DeployError on any
    problem, with nothing left behind."""
    tmp = "%s.unpacking-%d" % (dest, os.getpid())
    parent = os.path.dirname(os.path.abspath(dest))
    remove_inside(tmp, [parent])
    try:
        with open(war_path, "rb") as fp:
            declared = declared_entries(fp) if _limited(max_entries) else None
            if declared is not None and declared > max_entries:
                raise _too_many(declared, max_entries)
            fp.seek(0)
            with zipfile.ZipFile(fp) as zf:
                _expand(zf, tmp, max_size, max_entries)
        if os.path.exists(dest):
            raise DeployError("%s already exists" % dest)
        os.rename(tmp, dest)
    except DeployError:
        remove_inside(tmp, [parent])
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as exc:
        remove_inside(tmp, [parent])
        raise DeployError("%s is not a valid WAR (zip): %s" % (os.path.basename(war_path), exc)) from None
    except OSError as exc:
        remove_inside(tmp, [parent])
        raise DeployError("cannot expand %s: %s" % (os.path.basename(war_path), exc)) from None
    return dest


def _expand(zf, tmp, max_size, max_entries):
    """Write every entry of the checked archive ``zf`` under the new folder ``tmp``."""
    check_archive(zf, max_size, max_entries)
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
                if _limited(max_size) and written > max_size:
                    raise DeployError("expanded size passes the limit of %d bytes "
                                      "(maxExpandedSize)" % max_size)
                out.write(block)


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
