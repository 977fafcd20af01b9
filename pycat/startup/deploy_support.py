"""Helpers of HostConfig: what must change before a failed deploy is retried, what makes an app
reload, Context creation from descriptors, WAR trackers, the folders the deployer owns, and
verification of a started Context.

This module holds no state: the deployer of a Host is its HostConfig (``host.deployer``), and the
deploy channel that serves ``pycat deploy`` belongs to the Server (pycat.startup.manager_api).
The generic file signatures (``signature``, ``tree_signature``) are pycat.fileutil's.
"""
import contextlib
import logging
import os
import shutil

from pycat import attrs, reflect
from pycat.core.host import DEFAULT_CONTEXT_CLASS
from pycat.errors import ConfigError, DeployError
from pycat.fileutil import remove_inside, resolve_inside, signature, tree_signature
from pycat.webapp.loader import WebappLoader

log = logging.getLogger(__name__)

DEFAULT_WATCHED = ("WEB-INF/web.xml",)    # what Tomcat's stock conf/context.xml watches
TRACKER = os.path.join("META-INF", "war-tracker")


# -- signatures ------------------------------------------------------------------------------------
def artifact_signature(path):
    """What must change before a failed deploy is tried again: a file's signature; for a folder
    its descriptors and code (so fixing web.xml or a module in place is noticed)."""
    if not os.path.isdir(path):
        return signature(path)
    parts = [signature(os.path.join(path, "WEB-INF", "web.xml")),
             signature(os.path.join(path, "META-INF", "context.xml"))]
    for sub in ("classes", "lib"):
        full = os.path.join(path, "WEB-INF", sub)
        parts.append(tree_signature(full) if os.path.isdir(full) else None)
    return tuple(parts)


def reload_signatures(ctx, folder):
    """{resource: signature} of what makes the Context reload."""
    base = getattr(ctx, "doc_base_path", None) or folder or ""
    sigs = {}
    for res in getattr(ctx, "watched_resources", ()):
        path = res if os.path.isabs(res) else os.path.join(base, res)
        sigs[path] = signature(path)
    if getattr(ctx, "reloadable", False):
        for sub in ("classes", "lib"):
            path = os.path.join(base, "WEB-INF", sub)
            sigs[path] = tree_signature(path) if os.path.isdir(path) else None
    return sigs


# -- folders -------------------------------------------------------------------------------------
def host_work_root(host):
    """The Host's work folder, work/<Engine>/<Host>: the apps' work folders (SESSIONS.ser) and,
    with unpackWARs="false", their expanded WARs live in it."""
    engine = host.get_engine() if hasattr(host, "get_engine") else None
    return os.path.join(host.catalina_base, "work", getattr(engine, "name", None) or "Catalina", host.name)


def owned_roots(host):
    """The folders the deployer of ``host`` may remove things in: its appBase and its work folder."""
    return [host.get_app_base_path(), host_work_root(host)]


def check_owned(host, path):
    """DeployError unless ``path`` lies strictly inside a folder the Host's deployer owns (an
    expanded app's folder is about to be renamed and, on failure, removed)."""
    if resolve_inside(path, owned_roots(host)) is None:
        raise DeployError("%s is not inside %s" % (path, " or ".join(owned_roots(host))))


def remove_tree(path, roots):
    """Every removal the deployer makes goes through here: the file or folder tree ``path`` is
    removed only if its resolved path lies strictly inside one of ``roots`` (else refused and
    logged; see fileutil.remove_inside). The rmtree runs in the hub's thread pool: hundreds of
    unlinks would otherwise stall every request of the process for tens of milliseconds (file
    system calls release the GIL). True once the path is gone."""
    return remove_inside(path, roots, run=_in_thread_pool)


def _in_thread_pool(func, args):
    import gevent
    try:
        gevent.get_hub().threadpool.apply(func, args)
    except Exception:
        func(*args)


def app_work_dir(ctx):
    """The Context's work folder (its manager's; else where the manager would put it). Read
    while the Context is still in the tree: the default is derived from its Host and Engine."""
    manager = getattr(ctx, "manager", None)
    work = getattr(manager, "work_dir", None)
    if work:
        return work
    try:
        from pycat.core.session_support import work_dir_for
        return work_dir_for(ctx)
    except Exception:         # not a full Context (a test double, a custom class): nothing to remove
        return None


def sibling(folder, what):
    """A hidden working folder next to ``folder`` (scans skip names starting with ".")."""
    parent, name = os.path.split(folder)
    return os.path.join(parent, ".%s.%s" % (name, what))


def expanded_folder(host, cname, config_base):
    if getattr(host, "unpack_wars", True):
        return os.path.join(host.get_app_base_path(), cname.base_name)
    work = os.path.join(host_work_root(host), cname.base_name)
    log.warning("%s: unpackWARs is false; serving %s straight from the WAR is not supported, "
                "it is expanded into %s instead", host.name, cname.base_name, work)
    os.makedirs(os.path.dirname(work), exist_ok=True)
    return work


def copy_app_folder(source, dest, max_size=None, max_entries=None):
    """Copy the app folder ``source`` to the new folder ``dest`` (the manager's deploy of a
    folder). Refused, DeployError: a symbolic link anywhere in it (the copy must hold only what
    the folder itself holds), more than ``max_entries`` entries or ``max_size`` bytes (the
    limits a WAR's expansion has; None or -1 for none)."""
    if not os.path.isdir(source) or os.path.islink(source):
        raise DeployError("%s is not a folder" % source)
    entries = size = 0
    for root, dirs, files in os.walk(source):
        for name in dirs + files:
            full = os.path.join(root, name)
            if os.path.islink(full):
                raise DeployError("%s is a symbolic link; an app folder to deploy may hold none" % full)
            entries += 1
            if name in files:
                size += os.path.getsize(full)
        if max_entries is not None and max_entries >= 0 and entries > max_entries:
            raise DeployError("%s has more than %d entries (maxExpandedEntries)" % (source, max_entries))
        if max_size is not None and max_size >= 0 and size > max_size:
            raise DeployError("%s holds more than %d bytes (maxExpandedSize)" % (source, max_size))
    shutil.copytree(source, dest, symlinks=True)


def _war_stamp(war):
    sig = signature(war)
    return "%s %s\n" % sig if sig else ""


def tracker_matches(folder, war):
    try:
        with open(os.path.join(folder, TRACKER)) as fh:
            return fh.read() == _war_stamp(war)
    except OSError:
        return False


def write_tracker(folder, war):
    os.makedirs(os.path.join(folder, "META-INF"), exist_ok=True)
    with open(os.path.join(folder, TRACKER), "w") as fh:
        fh.write(_war_stamp(war))


def relocate(app, folder):
    """Point a serving app at the folder its files were moved to (during a redeploy swap)."""
    ctx = app.context
    old = getattr(ctx, "doc_base_path", None)
    new = os.path.realpath(folder)
    ctx.doc_base_path = new
    loader = getattr(ctx, "loader", None)
    if old and hasattr(loader, "relocate"):
        loader.relocate(old, new)


def farm_deployer(host):
    """The running farm deployer (a cluster's <Deployer>) that deploys to ``host``, or None."""
    cluster = host.get_cluster() if hasattr(host, "get_cluster") else None
    deployer = getattr(cluster, "deployer", None)
    if deployer is None or getattr(deployer, "host", None) is not host:
        return None
    state = getattr(deployer, "state", None)
    return deployer if state is not None and state.available else None


# -- contexts --------------------------------------------------------------------------------------
def _digest_context(path, host):
    from pycat.startup.digester import Digester
    props = dict(os.environ)
    props.update({"catalina.base": host.catalina_base, "catalina.home": host.catalina_home})
    try:
        ctx = Digester(properties=props).parse_file(path)
    except ConfigError as exc:
        raise DeployError("bad context descriptor: %s" % exc) from None
    if not hasattr(ctx, "add_watched_resource"):
        raise DeployError("%s does not describe a <Context>" % path)
    return ctx


def descriptor_doc_base(host, xml, cname):
    ctx = _digest_context(xml, host)
    doc_base = ctx.doc_base or cname.base_name
    if not os.path.isabs(doc_base):
        doc_base = os.path.join(host.get_app_base_path(), doc_base)
    return os.path.abspath(doc_base)


def _apply_defaults(ctx, host):
    """conf/context.xml (base, then home) applies to every Context, under its own settings."""
    for root in (host.catalina_base, host.catalina_home):
        path = os.path.join(root, "conf", "context.xml")
        if os.path.isfile(path):
            defaults = _digest_context(path, host)
            for name, attr in attrs.configurable_attrs(type(defaults)).items():
                if attr.name in defaults.__dict__ and attr.name not in ctx.__dict__:
                    setattr(ctx, attr.name, defaults.__dict__[attr.name])
            for res in defaults.watched_resources:
                ctx.add_watched_resource(res)
            for key, value in defaults.parameters.items():
                ctx.parameters.setdefault(key, value)
            if getattr(ctx, "manager", None) is None and getattr(defaults, "manager", None) is not None:
                ctx.set_manager(defaults.manager)
            return True
    return False


def new_context(host, cname, doc_base, descriptor=None):
    """The Context for an app: from its descriptor, else META-INF/context.xml (deployXML), else
    the Host's contextClass; conf/context.xml defaults under it; path/name/version from cname."""
    meta = os.path.join(doc_base, "META-INF", "context.xml")
    if descriptor:
        ctx = _digest_context(descriptor, host)
    elif getattr(host, "deploy_xml", True) and os.path.isfile(meta):
        ctx = _digest_context(meta, host)
    else:
        ctx = reflect.load_class(getattr(host, "context_class", None) or DEFAULT_CONTEXT_CLASS)()
    if not _apply_defaults(ctx, host):
        for res in DEFAULT_WATCHED:
            ctx.add_watched_resource(res)
    if not os.path.isdir(doc_base):
        raise DeployError("docBase %s is not a folder" % doc_base)
    ctx.path = cname.path
    ctx.name = cname.name
    if hasattr(type(ctx), "webapp_version"):
        ctx.webapp_version = cname.version
    ctx.doc_base = os.path.abspath(doc_base)
    if hasattr(ctx, "set_loader") and getattr(ctx, "loader", None) is None:
        ctx.set_loader(WebappLoader(os.path.join(ctx.doc_base, "WEB-INF"), name=cname.base_name))
    return ctx


def verify_context(ctx):
    """After start: every servlet class of the app must import (an import error fails the
    deploy now rather than the first request later)."""
    from pycat.webapp.servlet import SERVLET_ALIASES
    loader = getattr(ctx, "loader", None)
    if loader is None:
        return
    for wrapper in list(getattr(ctx, "children", {}).values()):
        name = getattr(wrapper, "servlet_class", None)
        if not name or getattr(wrapper, "servlet", None) is not None:
            continue
        name = SERVLET_ALIASES.get(name.strip(), name)
        try:
            loader.load(name)
        except Exception as exc:
            raise DeployError("servlet [%s] class %s cannot be loaded: %s: %s"
                              % (wrapper.name, name, type(exc).__name__, exc)) from exc


def carry_sessions(new_ctx, old_ctx):
    """After a redeploy swap, once the old Context has stopped: the new Context's manager takes
    the old one's sessions (``Manager.take_over``), as they survive an undeploy+deploy in Tomcat.
    Values of the app's own classes load with the new code (loader.canonical names)."""
    new_m, old_m = getattr(new_ctx, "manager", None), getattr(old_ctx, "manager", None)
    if new_m is None or old_m is None or not callable(getattr(new_m, "take_over", None)):
        return
    with app_loader_bound(new_ctx):
        new_m.take_over(old_m)


def app_loader_bound(ctx):
    """A context manager binding the Context's import loader (its app's modules resolve as the
    app's), or doing nothing when it has none."""
    loader = getattr(ctx, "loader", None)
    return loader.bound() if loader is not None else contextlib.nullcontext()


def describe(exc):
    """One line: the innermost cause's type and message (a LifecycleError wraps the real one)."""
    seen = set()
    while not isinstance(exc, DeployError) and exc.__cause__ is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__
    text = str(exc)
    return text if isinstance(exc, DeployError) else "%s: %s" % (type(exc).__name__, text)
