"""HostConfig: the Host lifecycle listener that deploys web applications found in appBase.

Attached by the rule table to every Host (Tomcat's HostRuleSet adds it the same way). On the
Host's "start" event, when ``deployOnStartup`` is true, each directory in appBase becomes a
Context (names follow Tomcat's ContextName: ``ROOT`` -> "", ``a#b`` -> "/a/b", ``app##2`` ->
"/app" version 2), unless ``deployIgnore`` matches the name or server.xml already defined a
Context with that path. WAR files and autoDeploy scanning belong to the deployment work that
comes next: they are logged, not pretended.
"""
import logging
import os
import re

from pycat import reflect

log = logging.getLogger(__name__)

DEFAULT_CONTEXT_CLASS = "pycat.core.context:Context"


def context_path_for(name):
    """Directory or WAR base name -> (context path, version) as Tomcat's ContextName does."""
    base, _, version = name.partition("##")
    if base == "ROOT" or base == "":
        return "", version
    return "/" + base.replace("#", "/"), version


class HostConfig:
    def __init__(self):
        self.deployed = {}  # context path -> Context we created
        self._autodeploy_logged = False

    def lifecycle_event(self, event):
        host = event.source
        if event.type == "start":
            if getattr(host, "deploy_on_startup", True):
                self.deploy_apps(host)
        elif event.type == "periodic":
            if getattr(host, "auto_deploy", False) and not self._autodeploy_logged:
                self._autodeploy_logged = True
                log.info("%s: autoDeploy is on, but scanning appBase for changes is not handled yet",
                         getattr(host, "name", host))
        elif event.type == "stop":
            self.deployed.clear()

    def deploy_apps(self, host):
        app_base = host.get_app_base_path()
        if not os.path.isdir(app_base):
            log.warning("%s: appBase %s does not exist; nothing to deploy", host.name, app_base)
            return
        ignore = getattr(host, "deploy_ignore", None)
        ignore_re = re.compile(ignore) if ignore else None
        for name in sorted(os.listdir(app_base)):
            if name.startswith(".") or (ignore_re is not None and ignore_re.fullmatch(name)):
                continue
            full = os.path.join(app_base, name)
            if os.path.isdir(full):
                self.deploy_directory(host, name, full)
            elif name.lower().endswith(".war"):
                stem = name[:-4]
                if not os.path.isdir(os.path.join(app_base, stem)):
                    log.info("%s: %s is a WAR file; deploying WARs is not handled yet (unpack it into "
                             "appBase/%s to serve it)", host.name, name, stem)

    def deploy_directory(self, host, name, full):
        path, version = context_path_for(name)
        if self._has_context(host, path):
            log.debug("%s: context %r already defined; not deploying %s", host.name, path, full)
            return None
        cls = reflect.load_class(getattr(host, "context_class", None) or DEFAULT_CONTEXT_CLASS)
        ctx = cls()
        ctx.path = path
        ctx.doc_base = full
        if version and hasattr(type(ctx), "webapp_version"):
            ctx.webapp_version = version
        log.info("%s: deploying web application directory %s as %r", host.name, full, path or "/")
        try:
            host.add_child(ctx)
        except Exception:
            log.exception("%s: deploying %s failed; other applications go on", host.name, full)
            return None
        self.deployed[path] = ctx
        return ctx

    @staticmethod
    def _has_context(host, path):
        find = getattr(host, "find_child", None)
        if find is not None:
            try:
                return find(path) is not None
            except Exception:
                return False
        children = getattr(host, "children", None) or {}
        values = children.values() if isinstance(children, dict) else children
        return any(getattr(c, "path", None) == path for c in values)
