"""Session attribute values in and out of bytes: the only module of pycat that unpickles.

``dump(value, class_filter=None, loader=None)`` is the one way a value becomes bytes: the standard
pickler when it can, dill when it cannot (lambdas, closures, classes defined in functions).
``load(blob, trusted, class_filter=None, loader=None)`` is the one way bytes become a value again,
for every source: the restart file (SESSIONS.ser), the stores, and (later) the cluster. The
manager calls both (``ManagerBase.dump_value`` / ``load_value``) with its filter and its app's
loader; nothing else in pycat calls ``pickle.loads`` or ``dill.loads`` (a test checks it).

What a load may build depends on two things the caller states:

=========================  ===================================================================
trusted, no filter         anything (loading a pickle can run any code: the source must be as
                           safe as our own files: SESSIONS.ser, a store only the nodes' user
                           can write)
a class filter is set      only classes and functions whose name matches it (fullmatch), and a
                           value whose own class matches it; trusted or not
untrusted, no filter       plain values only: str, int, float, complex, bool, None, bytes,
                           bytearray, list, tuple, dict, set, frozenset, the datetime types,
                           Decimal, UUID (``PLAIN_CLASSES``)
=========================  ===================================================================

A restricted load checks each name the stream asks for *before* importing anything, then checks
what the import produced by its own ``__module__``/``__qualname__`` (so ``allowed.os.system`` is
refused even when a loose filter matches the dotted name), and refuses with ``ValueRefused``.
Since every class or function a pickle calls comes through that check (``find_class``), a refused
stream never runs anything: opcodes alone build only plain containers and scalars.

Names and the app's loader. App classes live under the app's private package
(``_pycat_webapp_<app>.cart.Cart``, pycat/webapp/loader.py). A filter may name them as the app's
code does (``cart\\.Cart``) or in full. A stream naming a module of another generation of the app
(saved before a redeploy, sent by a node that deployed it more often) gets the bound generation's
module. A stream naming a module by its plain name resolves as written, and when nothing outside
the app provides that module, to the app's module of that name (a value written where the app was
not isolated). During a load the app's loader is bound, so code that runs while a value is rebuilt
(a ``__setstate__``, a library resolving a module by name) sees the app's modules, as the app's
own code would. ``bound(loader)`` binds it once for a batch (a whole restart file) instead of once
per value.

A value whose rebuilding raises SystemExit or KeyboardInterrupt (app code) fails like any damaged
value (ValueError) instead of ending the node.
"""
import contextvars
import io
import pickle
import sys

import greenlet

#: the package prefix of app modules (pycat.webapp.loader.PREFIX; duplicated rather than imported
#: because the session layer sits under webapp; test_values checks the two agree)
APP_MODULE_PREFIX = "_pycat_webapp_"

#: what an untrusted source may hold when no filter is configured: "module.QualName" of the
#: classes a stream may name and of the value itself (lists, dicts... need no name in a pickle)
PLAIN_CLASSES = frozenset({
    "builtins.str", "builtins.int", "builtins.float", "builtins.complex", "builtins.bool",
    "builtins.NoneType", "builtins.bytes", "builtins.bytearray", "builtins.list", "builtins.tuple",
    "builtins.dict", "builtins.set", "builtins.frozenset",
    "datetime.date", "datetime.time", "datetime.datetime", "datetime.timedelta", "datetime.timezone",
    "decimal.Decimal", "uuid.UUID",
})

# the loader bound by bound() in this greenlet (contextvars are per greenlet under gevent)
_BOUND = contextvars.ContextVar("pycat_session_values_loader", default=None)


class ValueRefused(Exception):
    """A value (or a class or function its bytes name) is not allowed by the load's policy."""

    def __init__(self, class_name, reason):
        self.class_name = class_name
        self.reason = reason
        super().__init__("%s %s" % (class_name, reason))


def class_name(cls):
    """'module.QualName' of a class (or function)."""
    return "%s.%s" % (getattr(cls, "__module__", None), getattr(cls, "__qualname__", None))


def _strip_app_prefix(name, loader, any_app):
    """``name`` without its app package, or None: the app's own prefix (the bound loader's live
    one), or with ``any_app`` any app prefix (a name in a stream, before we know where it leads)."""
    head, dot, rest = name.partition(".")
    if not dot or not head.startswith(APP_MODULE_PREFIX):
        return None
    if any_app or (loader is not None and head == loader.prefix):
        return rest
    return None


class _Policy:
    """What one load may build: everything (None pattern, not plain_only), a filter, or plain."""
    __slots__ = ("pattern", "plain_only", "loader")

    def __init__(self, pattern, plain_only, loader):
        self.pattern, self.plain_only, self.loader = pattern, plain_only, loader

    @property
    def restricted(self):
        return self.plain_only or self.pattern is not None

    def allows(self, name, any_app=False):
        if self.plain_only:
            return name in PLAIN_CLASSES
        pattern = self.pattern
        if pattern is None or pattern.fullmatch(name):
            return True
        plain = _strip_app_prefix(name, self.loader, any_app)
        return plain is not None and pattern.fullmatch(plain) is not None

    def refusal(self):
        return ("is not a plain value and the source is not trusted" if self.plain_only
                else "does not match sessionAttributeValueClassNameFilter")


# -- out ----------------------------------------------------------------------------------------
def dump(value, class_filter=None, loader=None):
    """The bytes of a value, loadable by ``load``. With ``class_filter`` (a compiled pattern) a value
    whose class does not match raises ValueRefused; a value no pickler can write raises what the
    pickler raised."""
    if class_filter is not None:
        policy = _Policy(class_filter, False, loader)
        name = class_name(type(value))
        if not policy.allows(name):
            raise ValueRefused(name, policy.refusal())
    try:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception:
        # imported here: a node whose sessions hold plain values never pays dill's ~3 MB
        import dill
        return dill.dumps(value, pickle.HIGHEST_PROTOCOL)


# -- in -------------------------------------------------------------------------------------------
class _Unpickler(pickle.Unpickler):
    """The C unpickler with our find_class: the policy's name checks, and plain app module names."""

    def __init__(self, blob, policy):
        super().__init__(io.BytesIO(blob))
        self._policy = policy

    def find_class(self, module, name):
        policy = self._policy
        restricted = policy.restricted
        if restricted and not policy.allows("%s.%s" % (module, name), any_app=True):
            raise ValueRefused("%s.%s" % (module, name), policy.refusal())   # nothing imported yet
        obj = self._resolve(module, name)
        if restricted:
            # what the import produced, by its own name: a loose pattern matching the dotted path
            # (allowed.os.system) must not let through what the path leads to (posix.system)
            real = class_name(obj)
            if getattr(obj, "__qualname__", None) is None or not policy.allows(real):
                raise ValueRefused(real, policy.refusal())
        return obj

    def _resolve(self, module, name):
        loader = self._policy.loader
        if loader is not None and loader.prefix is not None:
            module = _this_generation(module, loader)
        try:
            return super().find_class(module, name)
        except ModuleNotFoundError as exc:
            top = module.partition(".")[0]
            # a plain name nothing outside the app provides: the app's module of that name
            if (loader is None or loader.prefix is None or top not in loader.tops
                    or top in sys.stdlib_module_names or exc.name not in (top, module)):
                raise
        return super().find_class(loader.prefix + "." + module, name)


def _family(loader):
    """The bytes every generation's prefix of this app starts with (``_pycat_webapp_<slug>``)."""
    return (APP_MODULE_PREFIX + loader.slug).encode()


def _this_generation(module, loader):
    """A module of any generation of the bound app, as the bound generation's module: a value saved
    by (or sent from a node running) another generation of the app is rebuilt with today's classes."""
    head, dot, rest = module.partition(".")
    if head == loader.prefix or not head.startswith(APP_MODULE_PREFIX):
        return module
    family = APP_MODULE_PREFIX + loader.slug
    if head == family or (head.startswith(family + "_") and head[len(family) + 1:].isdigit()):
        return loader.prefix + dot + rest
    return module


def load(blob, trusted, class_filter=None, loader=None):
    """The value in ``blob`` (bytes of ``dump``). ``trusted``: may this source make us run any code?
    (see the module doc). ``class_filter``: a compiled pattern or None. ``loader``: the app's
    WebappLoader (bound during the load) or None. Raises ValueRefused when the policy refuses a
    name, ValueError or what the unpickler raised when the bytes are damaged."""
    if loader is not None and _BOUND.get() is not loader:
        with bound(loader):
            return load(blob, trusted, class_filter, loader)
    try:
        if trusted and class_filter is None:
            if loader is None or loader.prefix is None or _family(loader) not in blob:
                # the C unpickler alone first: four times faster than anything with a Python hook.
                # Same result: a stream naming no module of the app needs no generation mapping,
                # and a plain name it cannot import comes to the fallback below
                try:
                    return pickle.loads(blob)
                except Exception:
                    pass
            try:
                return _Unpickler(blob, _Policy(None, False, loader)).load()
            except Exception:
                # dill's own unpickler knows the few names older dill versions wrote differently
                import dill
                return dill.loads(blob)
        policy = _Policy(class_filter, not trusted and class_filter is None, loader)
        value = _Unpickler(blob, policy).load()
        name = class_name(type(value))
        if not policy.allows(name):
            raise ValueRefused(name, policy.refusal())
        return value
    except (Exception, greenlet.GreenletExit):
        raise
    except BaseException as exc:
        raise _lost(exc) from None


def _lost(exc):
    """App code run while rebuilding a value (a __setstate__, an import) called sys.exit() or the
    like: that value is lost, not the node (a greenlet kill is not caught: it is how we stop)."""
    return ValueError("rebuilding the value raised %s: %s" % (type(exc).__name__, exc))


def load_function(trusted, class_filter=None, loader=None):
    """``load`` with these arguments as a function of the blob alone, for decoding many values (the
    common case, a trusted source without filter or app, costs pickle.loads and nothing more)."""
    if trusted and class_filter is None and loader is None:
        return _load_trusted
    return lambda blob: load(blob, trusted, class_filter, loader)


def _load_trusted(blob):
    try:
        return pickle.loads(blob)
    except Exception:
        return load(blob, True)      # the slow path gets its chance (dill), and says why not
    except greenlet.GreenletExit:
        raise
    except BaseException as exc:
        raise _lost(exc) from None


def dump_function(class_filter=None, loader=None):
    """``dump`` with these arguments as a function of the value alone."""
    if class_filter is None:
        return dump
    return lambda value: dump(value, class_filter, loader)


class bound:
    """``with bound(loader):`` binds the app's loader once for many loads (a whole file)."""
    __slots__ = ("loader", "_token", "_outer")

    def __init__(self, loader):
        self.loader = loader
        self._token = self._outer = None

    def __enter__(self):
        loader = self.loader
        if loader is not None and _BOUND.get() is not loader:
            self._token = _BOUND.set(loader)
            self._outer = loader.bound()
            self._outer.__enter__()
        return self

    def __exit__(self, kind, exc, tb):
        if self._token is not None:
            try:
                self._outer.__exit__(None, None, None)   # unbind; the exception goes on from here
            finally:
                _BOUND.reset(self._token)
                self._token = self._outer = None
        return False
