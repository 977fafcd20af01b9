"""Per-application import of WEB-INF/classes (a simple form of Tomcat's WebappClassLoader).

``load("app:Servlet")`` imports ``app`` from this application's WEB-INF/classes when the module
lives there, else as a normal import (``pycat.webapp.default_servlet``...). The app's modules are
kept in the loader, not in ``sys.modules``: during the import the classes folder is put first on
``sys.path`` and any module of the same top-level name from another app is set aside; afterwards
``sys.path`` and ``sys.modules`` are restored. So two apps may both ship ``app.py``.
Limitation (full isolation is a later version): an app module importing another of its own
modules *lazily at request time* (import inside a function) does a normal import.
"""
import importlib
import logging
import os
import sys

import gevent.lock

log = logging.getLogger(__name__)

# imports mutate process-wide state (sys.path, sys.modules): one at a time, per greenlet
_IMPORT_LOCK = gevent.lock.RLock()


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


class WebappLoader:
    def __init__(self, web_inf):
        self.web_inf = web_inf
        self.classes = os.path.join(web_inf, "classes")
        self.modules = {}

    def start(self):
        self.modules = {}

    def stop(self):
        # dropping our references lets an undeployed app's modules be collected
        self.modules = {}

    def _own_top_names(self):
        """Top-level module names this app's WEB-INF/classes provides."""
        try:
            entries = os.listdir(self.classes)
        except OSError:
            return frozenset()
        names = set()
        for entry in entries:
            if entry.endswith(".py"):
                names.add(entry[:-3])
            elif os.path.isdir(os.path.join(self.classes, entry)) and entry.isidentifier():
                names.add(entry)
        return frozenset(names)

    def import_module(self, module_name):
        module = self.modules.get(module_name)
        if module is not None:
            return module
        tops = self._own_top_names()
        if module_name.split(".", 1)[0] not in tops:
            return importlib.import_module(module_name)
        with _IMPORT_LOCK:
            def belongs(key):
                return key.split(".", 1)[0] in tops
            # another app's (or the server's) modules of the same names step aside meanwhile
            saved = {k: sys.modules.pop(k) for k in list(sys.modules) if belongs(k)}
            sys.modules.update(self.modules)
            sys.path.insert(0, self.classes)
            try:
                importlib.invalidate_caches()
                module = importlib.import_module(module_name)
            finally:
                try:
                    sys.path.remove(self.classes)
                except ValueError:
                    pass
                for key in [k for k in sys.modules if belongs(k)]:
                    self.modules[key] = sys.modules.pop(key)
                sys.modules.update(saved)
        return module

    def load(self, name):
        module_name, attr = split_name(name)
        obj = self.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj
