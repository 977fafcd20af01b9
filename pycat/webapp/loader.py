"""Per-application imports (Tomcat's WebappClassLoader, the Python way).

Design. Each started WebappLoader owns a private package name, its *prefix*
(``_pycat_webapp_<app>`` for the first generation of an app in this process,
``_pycat_webapp_<app>_<n>`` for later ones while an earlier one still exists). The prefix is a
synthetic package in ``sys.modules`` whose ``__path__`` is the app's import path:
``WEB-INF/classes`` then each wheel/zip in ``WEB-INF/lib`` (sorted). The app's module
``utils`` therefore lives in ``sys.modules`` as ``<prefix>.utils`` with that ``__name__``: no
two apps (nor two generations of one app) ever share an entry, and everything that looks a
module up by its ``__name__`` (Flask(__name__), pickle, dataclasses, inspect) works.

The app's code still writes plain names (``import utils``, ``from pkg import helper``). Two
hooks, installed once per process, map those: ``builtins.__import__`` and
``importlib.import_module``. For an absolute import whose top-level name is one the app
provides (a ``.py``/package/extension in classes, or a top-level entry of a lib archive), the
name is rewritten to ``<prefix>.<name>`` for:

* code of the app itself -- the importing module's ``__name__`` starts with a live prefix
  (precise, works at any time: module level, inside functions at request time);
* any code running *for* the app -- a request in that Context, or the app being loaded (the
  ``current`` context variable, bound by the Host valve and by ``load()``; the equivalent of
  Tomcat's thread context class loader). This is what lets a framework in site-packages do
  ``importlib.import_module("mysite.settings")`` for the app.

Every other import is untouched (the stdlib and site-packages stay shared, as Tomcat shares
the JRE and lib/). Relative imports need no help: ``__package__`` already carries the prefix.

``stop()`` removes the prefix and every ``<prefix>.*`` entry from ``sys.modules`` and forgets
the finders cached for the app's paths (the zip directory cache included, so a replaced wheel
is re-read): nothing of an undeployed app stays importable, and the next ``start()`` gets a new
generation that runs the new code. App sources are compiled from the source text on each
generation, never from ``__pycache__`` (a file rewritten within the same second with the same
size would otherwise keep its stale bytecode).

Limits: code that looks an app module up in ``sys.modules`` by its *plain* name (werkzeug's
``import_string`` does) does not find it; Django apps whose models rely on their plain module
name for the app label need ``app_label``. Pickled app classes carry the prefixed module name;
``canonical_module_name()`` maps a name of any generation of an app to the live one.
"""
import builtins
import contextlib
import contextvars
import importlib
import importlib.machinery
import logging
import os
import re
import sys
import types
import zipfile
import zipimport

import gevent.lock

# the boundary around app code lives in layer 1 (session listeners need it too); re-exported here
from pycat.appcode import AppAbort, abort, app_code, is_abort  # noqa: F401
from pycat.webapp.cooperate import cooperate

log = logging.getLogger(__name__)

PREFIX = "_pycat_webapp_"
LIB_SUFFIXES = (".whl", ".zip", ".egg", ".jar")

#: the loader of the web app a greenlet is working for (request or deployment), or None
current = contextvars.ContextVar("pycat_webapp_loader", default=None)

_registry = {}            # prefix -> started WebappLoader
_used_slugs = {}          # app slug -> generations handed out
_LOCK = gevent.lock.RLock()
_orig_import = builtins.__import__
_orig_import_module = importlib.import_module
_hooks_installed = False


def split_name(name):
    """'pkg.mod:Attr' or 'pkg.mod.Attr' → ('pkg.mod', 'Attr')."""
    name = name.strip()
    if ":" in name:
        module, _, attr = name.partition(":")
    else:
        module, _, attr = name.rpartition(".")
    if not module or not attr:
        raise ImportError("%r is not 'module:name' or 'module.name'" % name)
    return module, attr


# -- the hooks ----------------------------------------------------------------------------------
_NEVER_REDIRECTED = frozenset(sys.stdlib_module_names) | {"pycat", "gevent", "greenlet"}


def _owner(globals_):
    name = globals_.get("__name__") if globals_ is not None else None
    if name:
        if name.startswith(PREFIX):
            return _registry.get(name.partition(".")[0])
        # the server's and the stdlib's own lazy imports never see an app's modules, even while
        # working for the app (an app shipping json.py must not change what pycat's json is)
        if name.partition(".")[0] in _NEVER_REDIRECTED:
            return None
    return current.get()


def _hooked_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and _registry:
        if name.startswith(PREFIX):
            # an app module by its full name: pickle restoring a saved session's value at a Context's
            # start, outside the app_code() of load() -- its import may sys.exit() too
            return _import_app_module(name, name, globals, locals, fromlist, alias=True)
        loader = _owner(globals)
        if loader is not None and loader.prefix is not None:
            top = name.partition(".")[0]
            if top in loader.tops:
                full = loader.prefix + "." + name
                module = _import_app_module(full, name, globals, locals, fromlist)
                if not fromlist:
                    return sys.modules[loader.prefix + "." + top]
                return module
    return _orig_import(name, globals, locals, fromlist, level)


def _import_app_module(full, name, globals, locals, fromlist, alias=False):
    try:
        if alias and name.partition(".")[0] not in _registry:
            _alias_old_generation(name)
        return _orig_import(full, globals, locals, fromlist, 0)
    except Exception:
        raise
    except BaseException as exc:
        if is_abort(exc):
            raise abort(exc, "importing %s" % name) from None
        raise


def _hooked_import_module(name, package=None):
    if _registry:
        loader = _owner(sys._getframe(1).f_globals)
        if loader is not None and loader.prefix is not None:
            if not name.startswith("."):
                if name.partition(".")[0] in loader.tops:
                    name = loader.prefix + "." + name
            elif package and package.partition(".")[0] in loader.tops:
                package = loader.prefix + "." + package
    return _orig_import_module(name, package)


def _alias_old_generation(name):
    """``name`` belongs to a generation of an app that is gone (a pickled session value from
    before a redeploy): import the same module of the live generation and let the old name
    point at it, so pickle's ``sys.modules[name]`` finds it. The alias goes with the live
    generation's stop()."""
    live = canonical_module_name(name)
    if live == name or name in sys.modules:
        return
    try:
        module = _orig_import_module(live)
    except ImportError:
        return
    head = name.partition(".")[0]
    parts = name.split(".")
    for i in range(1, len(parts) + 1):     # the old package chain too: pickle imports "a.b"
        old = ".".join(parts[:i])
        if old not in sys.modules:
            sys.modules[old] = sys.modules.get(live.partition(".")[0] + old[len(head):], module)


def _path_hook(path):
    """Finders for WEB-INF/classes folders and every package folder under them, so all of an
    app's sources load with _SourceOnlyLoader (never a stale __pycache__)."""
    for loader in list(_registry.values()):
        for root in loader.paths:
            if path == root or path.startswith(root + os.sep):
                if os.path.isdir(root):
                    return _classes_finder(path)
    raise ImportError("not inside a web application's classes folder")


def install_hooks():
    global _hooks_installed
    if not _hooks_installed:
        builtins.__import__ = _hooked_import
        importlib.import_module = _hooked_import_module
        sys.path_hooks.insert(0, _path_hook)
        _hooks_installed = True


def live_prefixes():
    return dict(_registry)


def canonical_module_name(module_name):
    """A module name of any generation of an app → the same module in the live generation
    (for unpickling app classes after a redeploy); other names are returned unchanged."""
    if not module_name.startswith(PREFIX):
        return module_name
    head, dot, rest = module_name.partition(".")
    if head in _registry:
        return module_name
    slug = re.sub(r"_\d+$", "", head[len(PREFIX):])
    for prefix, loader in _registry.items():
        if loader.slug == slug:
            return prefix + dot + rest
    return module_name


def _slug(text):
    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_") or "ROOT"


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compile from the source every time: an app's bytecode cache could be stale."""

    def get_code(self, fullname):
        cooperate()
        source = self.get_data(self.path)
        return compile(source, self.path, "exec", dont_inherit=True)

    def set_data(self, path, data, *, _mode=0o666):
        pass


def _classes_finder(path):
    return importlib.machinery.FileFinder(
        path,
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
        (_SourceOnlyLoader, importlib.machinery.SOURCE_SUFFIXES))


class WebappLoader:
    def __init__(self, web_inf, name=None):
        self.web_inf = web_inf
        self.classes = os.path.join(web_inf, "classes")
        self.lib = os.path.join(web_inf, "lib")
        self.slug = _slug(name or os.path.basename(os.path.dirname(os.path.abspath(web_inf))))
        self.prefix = None
        self.started = False
        self.paths = []
        self.tops = frozenset()

    # -- life ------------------------------------------------------------------------------------
    def start(self):
        if self.started:
            return
        install_hooks()
        with _LOCK:
            self.started = True
            self.paths = self._import_path()
            self.tops = self._top_names()
            if not self.paths:
                return          # nothing of its own to import: no package, no registration
            n = _used_slugs.get(self.slug, 0)
            prefix = PREFIX + self.slug + ("_%d" % n if n else "")
            while prefix in _registry or prefix in sys.modules:
                n += 1
                prefix = PREFIX + self.slug + "_%d" % n
            _used_slugs[self.slug] = n + 1
            package = types.ModuleType(prefix, "Import root of the web app in %s" % self.web_inf)
            spec = importlib.machinery.ModuleSpec(prefix, None, is_package=True)
            spec.submodule_search_locations = list(self.paths)
            package.__spec__ = spec
            package.__path__ = list(self.paths)
            package.__package__ = prefix
            for path in self.paths:
                if os.path.isdir(path):
                    sys.path_importer_cache.pop(path, None)    # _path_hook makes ours
            sys.modules[prefix] = package
            self.prefix = prefix
            _registry[prefix] = self
        log.debug("Web app loader %s started: %s provides %s", prefix, self.paths, sorted(self.tops))

    def stop(self):
        """Forget every module of this generation (see the module docstring)."""
        with _LOCK:
            self.started = False
            prefix = self.prefix
            if prefix is None:
                return
            _registry.pop(prefix, None)
            self.prefix = None
            if _used_slugs.get(self.slug) and not any(l.slug == self.slug for l in _registry.values()):
                _used_slugs[self.slug] = 0     # the plain prefix is free again
            dotted = prefix + "."
            for key, module in list(sys.modules.items()):
                owner = getattr(module, "__name__", None) or ""
                if key == prefix or key.startswith(dotted) or (
                        key.startswith(PREFIX) and (owner == prefix or owner.startswith(dotted))):
                    sys.modules.pop(key, None)      # its modules, and old names aliased to them
            for path in self.paths:
                zipimport._zip_directory_cache.pop(path, None)
                inside = path + os.sep
                for key in [k for k in list(sys.path_importer_cache) if k == path or k.startswith(inside)]:
                    # a live generation sharing the path gets a fresh one from _path_hook
                    sys.path_importer_cache.pop(key, None)
            importlib.invalidate_caches()

    def relocate(self, old_base, new_base):
        """The app's files moved from ``old_base`` to ``new_base`` (a redeploy swap): keep
        importing from where they are now."""
        def moved(path):
            if path == old_base or path.startswith(old_base + os.sep):
                return new_base + path[len(old_base):]
            return path
        with _LOCK:
            self.paths = [moved(p) for p in self.paths]
            package = sys.modules.get(self.prefix or "")
            if package is not None:
                package.__path__[:] = [moved(p) for p in package.__path__]
                for name, module in list(sys.modules.items()):
                    if name.startswith(self.prefix + ".") and hasattr(module, "__path__"):
                        module.__path__[:] = [moved(p) for p in module.__path__]

    @property
    def modules(self):
        """{plain name: module} of what this generation has imported so far."""
        prefix = self.prefix
        if prefix is None:
            return {}
        dotted = prefix + "."
        return {k[len(dotted):]: m for k, m in list(sys.modules.items()) if k.startswith(dotted)}

    # -- what the app provides --------------------------------------------------------------------
    def _import_path(self):
        paths = []
        if os.path.isdir(self.classes):
            paths.append(os.path.abspath(self.classes))
        try:
            libs = sorted(os.listdir(self.lib))
        except OSError:
            libs = []
        for entry in libs:
            if entry.lower().endswith(LIB_SUFFIXES) and os.path.isfile(os.path.join(self.lib, entry)):
                paths.append(os.path.abspath(os.path.join(self.lib, entry)))
        return paths

    def _top_names(self):
        names = set()
        for path in self.paths:
            if os.path.isdir(path):
                for entry in os.listdir(path):
                    names.update(_top_of(entry, os.path.isdir(os.path.join(path, entry))))
            else:
                try:
                    with zipfile.ZipFile(path) as zf:
                        for member in zf.namelist():
                            first, slash, _ = member.partition("/")
                            names.update(_top_of(first, bool(slash)))
                except (OSError, zipfile.BadZipFile) as exc:
                    log.warning("%s is not a readable zip (%s); it is left off the import path", path, exc)
                    self.paths.remove(path)
        return frozenset(names)

    # -- loading ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def bound(self):
        """Run the body as work for this app: plain imports of its modules resolve to them."""
        token = current.set(self)
        try:
            yield self
        finally:
            current.reset(token)

    def import_module(self, module_name):
        if not self.started:
            self.start()
        plain = module_name
        if self.prefix is not None and module_name.partition(".")[0] in self.tops:
            module_name = self.prefix + "." + module_name
        # a module may run anything at import, sys.exit() included (see AppAbort)
        with self.bound(), app_code("importing %s", plain):
            return _orig_import_module(module_name)

    def load(self, name):
        module_name, attr = split_name(name)
        with self.bound(), app_code("loading %s", name):
            obj = self.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)      # a module __getattr__ is app code too
        return obj


def _top_of(entry, is_dir):
    if is_dir:
        if entry.isidentifier() and not entry.startswith("__"):
            return (entry,)
        return ()
    if entry.endswith(".py"):
        stem = entry[:-3]
        return (stem,) if stem.isidentifier() else ()
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if entry.endswith(suffix):
            stem = entry[:-len(suffix)]
            return (stem,) if stem.isidentifier() else ()
    return ()
