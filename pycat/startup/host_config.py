"""HostConfig: the Host lifecycle listener that deploys, redeploys, reloads and undeploys apps.

Attached by the rule table to every Host (Tomcat's HostRuleSet does the same). On the Host's
``before_start`` event it becomes the Host's deployer (``host.deployer``: what the deploy
channel, and later a farm deployer, act through). On the Host's ``start`` event, which fires once
the Host's cluster, realm, children and valves have started (Tomcat's ContainerBase fires it at
the end of startInternal, and Tomcat's HostConfig deploys on it too), it joins the Server's deploy
channel (pycat.startup.manager_api) and deploys everything (``deployOnStartup``); on each
``periodic`` event (the Engine's background tick, ``backgroundProcessorDelay``) it runs
``check()`` when ``autoDeploy`` is on. Tests call ``check()`` directly.

Order, as Tomcat: context descriptors ``conf/<Engine>/<Host>/*.xml``, then ``*.war`` in
appBase, then folders in appBase. Names follow ContextName (pycat.webapp.war); ``deployIgnore``
(a regex on the file name) skips entries; names starting with "." are never deployed (our
temporary folders use them); a name that cannot be an app's (an empty, "." or ".." path segment,
e.g. ``#..war``; see war.parse_context_name) is refused with one log line and left in place. A
Context server.xml defines is left alone.

Files: whatever the deployer removes (an expanded folder, a failed deploy's leftovers, an
undeployed app's work folder) goes through deploy_support.remove_tree, which removes only paths
that resolve strictly inside appBase or the Host's work folder.

Each deployed app keeps *redeploy resources* (the WAR, the descriptor, the folder,
META-INF/context.xml; compared by mtime+size) and *reload resources* (WatchedResources, by
default WEB-INF/web.xml as in Tomcat's stock conf/context.xml, plus everything under
WEB-INF/classes and WEB-INF/lib when ``reloadable="true"``). ``check()``:

* a deleted WAR → undeploy and remove the folder it was expanded into; a deleted folder or
  descriptor → undeploy. An undeploy also removes the app's work folder (its SESSIONS.ser), as
  Tomcat does: the same app deployed again starts without the old sessions;
* a changed WAR (once it has stopped changing between two checks, so a half-copied file is
  never deployed) or descriptor → redeploy: the new Context is built and started *beside* the
  old one, then swapped in (Host.install_child); the old one is stopped after its in-flight
  requests. If anything fails (bad zip, unsafe entry, oversized archive, bad web.xml, an
  import error in a servlet, a failing start) the reason is logged and the old one serves on;
* a changed reload resource → reload: requests for that Context wait (Host.pause_context)
  while it stops and starts again with fresh modules, then go on; none fails;
* then new WARs (stable for two checks), descriptors and folders are deployed.

The expanded folder of a WAR carries ``META-INF/war-tracker`` (the WAR's mtime and size) so a
restart reuses it when the WAR did not change. With unpackWARs="false" the WAR is expanded
under work/<Engine>/<Host>/ instead of appBase (serving straight from the zip is not supported).
"""
import logging
import os
import re

import gevent.lock

from pycat.errors import DeployError
from pycat.fileutil import StableFiles, place_file, resolve_inside, signature
from pycat.startup import deploy_support as support
from pycat.startup.manager_api import DeployChannel
from pycat.webapp.cooperate import cooperative
from pycat.webapp.war import ContextName, parse_context_name, safe_unpack, version_key

log = logging.getLogger(__name__)


class DeployedApp:
    def __init__(self, cname, context, war=None, folder=None, descriptor=None, expanded=False):
        self.cname, self.context = cname, context
        self.war, self.folder, self.descriptor, self.expanded = war, folder, descriptor, expanded
        self.redeploy = {}
        self.reload = {}

    def snapshot(self):
        self.redeploy = {p: signature(p) for p in self.redeploy_paths()}
        self.reload = support.reload_signatures(self.context, self.folder)

    def redeploy_paths(self):
        paths = [p for p in (self.war, self.descriptor) if p]
        if self.folder:
            paths.append(self.folder)
        if self.folder and not self.descriptor:
            paths.append(os.path.join(self.folder, "META-INF", "context.xml"))
        return paths


class HostConfig:
    def __init__(self):
        self.host = None
        self.apps = {}        # context name -> DeployedApp
        self.pending = StableFiles()   # a WAR is deployed once it looked the same at two checks
        self.failed = {}      # artifact path -> signature of the attempt that failed
        self.lock = gevent.lock.RLock()   # Tomcat's "serviced" lock: one deployment at a time
        self.deploy_channel = None        # the Server's, while the Host runs

    @property
    def deployed(self):
        return {name: app.context for name, app in self.apps.items()}

    def lifecycle_event(self, event):
        host = event.source
        if event.type == "before_start":
            self.host = host
            host.deployer = self
        elif event.type == "start":
            self.host = host
            server = host.get_server() if hasattr(host, "get_server") else None
            if server is not None:
                self.deploy_channel = DeployChannel.of(server)
                self.deploy_channel.add_host(host)
            if getattr(host, "deploy_on_startup", True):
                self.deploy_apps(initial=True)
        elif event.type == "periodic":
            if getattr(host, "auto_deploy", False):
                self.host = host
                self.check()
        elif event.type == "stop":
            if self.deploy_channel is not None:
                self.deploy_channel.remove_host(host)
                self.deploy_channel = None
            if getattr(host, "deployer", None) is self:
                host.deployer = None
            self.apps.clear()
            self.pending.clear()

    # -- scanning ---------------------------------------------------------------------------------
    def _ignored(self, name):
        if name.startswith("."):
            return True
        ignore = getattr(self.host, "deploy_ignore", None)
        return bool(ignore) and re.fullmatch(ignore, name) is not None

    def _name(self, name, full):
        """The ContextName of an appBase or config base entry; None (logged once per change of
        the entry) if the name cannot be an app's."""
        try:
            return parse_context_name(name)
        except DeployError as exc:
            if self._worth_trying(full):
                log.error("%s: not deploying %s: %s", self.host.name, full, exc)
                self.failed[full] = support.artifact_signature(full)
            return None

    def _in_use(self, cname):
        return cname.name in self.apps or _find_child(self.host, cname.name) is not None

    def config_base(self):
        host = self.host
        engine = host.get_engine() if hasattr(host, "get_engine") else None
        base = getattr(host, "catalina_base", None) or os.getcwd()
        xml_base = getattr(host, "xml_base", None)
        if xml_base:
            return xml_base if os.path.isabs(xml_base) else os.path.join(base, xml_base)
        return os.path.join(base, "conf", getattr(engine, "name", None) or "Catalina", host.name)

    def deploy_apps(self, initial=False):
        with self.lock, cooperative():
            app_base = self.host.get_app_base_path()
            config_base = self.config_base()
            if os.path.isdir(config_base):
                for name in sorted(os.listdir(config_base)):
                    full = os.path.join(config_base, name)
                    if name.endswith(".xml") and not self._ignored(name) and os.path.isfile(full):
                        cname = self._name(name, full)
                        if cname is not None and not self._in_use(cname) and self._worth_trying(full):
                            self.deploy_descriptor(cname, full)
            if not os.path.isdir(app_base):
                log.warning("%s: appBase %s does not exist; nothing to deploy", self.host.name, app_base)
                return
            entries = sorted(os.listdir(app_base))
            for name in entries:
                full = os.path.join(app_base, name)
                if name.lower().endswith(".war") and not self._ignored(name) and os.path.isfile(full):
                    cname = self._name(name, full)
                    if cname is None or self._in_use(cname) or not self._worth_trying(full):
                        continue
                    if initial or self._stable(full):
                        self.deploy_war(cname, full)
            wars = {n[:-4] for n in entries if n.lower().endswith(".war")}
            for name in entries:
                full = os.path.join(app_base, name)
                if name in wars or self._ignored(name) or not os.path.isdir(full):
                    continue
                cname = self._name(name, full)
                if cname is not None and not self._in_use(cname) and self._worth_trying(full):
                    self.deploy_directory(cname, full)

    def _worth_trying(self, path):
        """A failed artifact is retried only once it changed."""
        failed = self.failed.get(path)
        return failed is None or failed != support.artifact_signature(path)

    def _stable(self, path):
        return self.pending.stable(path)

    def check(self):
        """One autoDeploy step: changed/deleted apps first, then new ones."""
        if self.host is None:
            return
        with self.lock, cooperative():
            self._watch_configured_contexts()
            for app in list(self.apps.values()):
                try:
                    self._check_app(app)
                except Exception:
                    log.exception("%s: checking %s failed", self.host.name, app.cname.display)
            self.deploy_apps()
            for path in [p for p in self.failed if not os.path.exists(p)]:
                del self.failed[path]
            if getattr(self.host, "undeploy_old_versions", False):
                self.undeploy_old_versions()

    def undeploy_old_versions(self):
        """Host undeployOldVersions: an older ## version with no session left is undeployed and
        its WAR/folder deleted (the newest version of each path always stays)."""
        by_path = {}
        for app in self.apps.values():
            by_path.setdefault(app.cname.path, []).append(app)
        for apps in by_path.values():
            if len(apps) < 2:
                continue
            apps.sort(key=lambda a: version_key(a.cname.version))
            for app in apps[:-1]:
                manager = getattr(app.context, "manager", None)
                try:
                    active = manager.active_sessions if manager is not None else 0
                except Exception:
                    continue
                if active == 0 and (app.war or app.folder) and not app.descriptor:
                    log.info("%s: undeploying old version %s (no active sessions)",
                             self.host.name, app.cname.display)
                    self.undeploy(app, remove_files=True)
                    if app.war:
                        support.remove_tree(app.war, [self.host.get_app_base_path()])

    def _watch_configured_contexts(self):
        """Contexts server.xml defines are not redeployed, but they reload like ours
        (reloadable / WatchedResource), as Tomcat's loader and ContextConfig do for them."""
        children = getattr(self.host, "find_children", None)
        for ctx in (children() if children is not None else []):
            name = getattr(ctx, "name", None)
            if name in self.apps or not getattr(ctx, "state", None) or not ctx.state.available:
                continue
            app = DeployedApp(ContextName(ctx.path, getattr(ctx, "webapp_version", "")), ctx)
            if app.cname.name == name:
                app.snapshot()
                self.apps[name] = app

    def _check_app(self, app):
        if _find_child(self.host, app.cname.name) is not app.context:
            self.apps.pop(app.cname.name, None)      # removed by someone else
            return
        for path, old in list(app.redeploy.items()):
            now = signature(path)
            gone_means_undeploy = path in (app.war, app.descriptor) or (path == app.folder and not app.war)
            # tested before "unchanged": a WAR deleted while its (re)deploy was swapping the Context
            # in is already absent from the snapshot taken after the swap (old is None too)
            if now is None and gone_means_undeploy:
                log.info("%s: %s was removed; undeploying %s", self.host.name, path, app.cname.display)
                self.undeploy(app, remove_files=app.expanded)
                return
            if now == old:
                continue
            if path == app.war and not self._stable(path):
                return
            log.info("%s: %s changed; redeploying %s", self.host.name, path, app.cname.display)
            self.redeploy(app)
            return
        now = support.reload_signatures(app.context, app.folder)
        if now != app.reload:
            changed = sorted(k for k in set(now) | set(app.reload) if now.get(k) != app.reload.get(k))
            log.info("%s: reloading %s (%s changed)", self.host.name, app.cname.display, ", ".join(changed[:3]))
            self.reload(app)

    # -- deploying --------------------------------------------------------------------------------
    def deploy_directory(self, cname, folder, replace=None):
        log.info("%s: deploying web application directory %s as %s", self.host.name, folder, cname.display)
        try:
            ctx = support.new_context(self.host, cname, folder)
            self._install(ctx, replace)
        except Exception as exc:
            return self._failed(cname, folder, exc, replace)
        return self._track(DeployedApp(cname, ctx, folder=folder))

    def deploy_war(self, cname, war, replace=None, descriptor=None):
        host = self.host
        log.info("%s: deploying web application archive %s as %s", host.name, war, cname.display)
        war_signature = signature(war)
        roots = support.owned_roots(host)
        dest = moved = fresh = None
        try:
            dest = support.expanded_folder(host, cname, self.config_base())
            # the folder is renamed away below and removed if the deploy fails: never one that is
            # not an app's own (a name is checked on the way in; this holds whatever the caller)
            support.check_owned(host, dest)
            if not support.tracker_matches(dest, war) or replace is not None:
                fresh = support.sibling(dest, "deploying")
                support.remove_tree(fresh, roots)
                safe_unpack(war, fresh, getattr(host, "max_expanded_size", None),
                            getattr(host, "max_expanded_entries", None))
                support.write_tracker(fresh, war)
                if os.path.exists(dest):
                    moved = support.sibling(dest, "previous")
                    support.remove_tree(moved, roots)
                    os.rename(dest, moved)
                    if replace is not None:
                        support.relocate(replace, moved)
                os.rename(fresh, dest)
            ctx = support.new_context(host, cname, dest, descriptor)
            self._install(ctx, replace)
        except Exception as exc:
            if fresh is not None:
                support.remove_tree(fresh, roots)
            if moved is not None:        # put the previous files back under the old app
                support.remove_tree(dest, roots)
                os.rename(moved, dest)
                if replace is not None:
                    support.relocate(replace, dest)
            elif dest is not None and replace is None and not os.path.exists(support.sibling(dest, "previous")):
                if support.tracker_matches(dest, war):
                    support.remove_tree(dest, roots)
            return self._failed(cname, war, exc, replace)
        if moved is not None:
            support.remove_tree(moved, roots)
        self.failed.pop(war, None)
        app = DeployedApp(cname, ctx, war=war, folder=dest, descriptor=descriptor, expanded=True)
        self._track(app)
        if war_signature is not None:   # a WAR copied over during this deploy is a change, not the baseline
            app.redeploy[war] = war_signature
        return ctx

    def deploy_descriptor(self, cname, xml, replace=None):
        log.info("%s: deploying configuration descriptor %s", self.host.name, xml)
        try:
            doc_base = support.descriptor_doc_base(self.host, xml, cname)
        except Exception as exc:
            return self._failed(cname, xml, exc, replace)
        if doc_base.lower().endswith(".war") and os.path.isfile(doc_base):
            return self.deploy_war(cname, doc_base, replace, descriptor=xml)
        try:
            ctx = support.new_context(self.host, cname, doc_base, xml)
            self._install(ctx, replace)
        except Exception as exc:
            return self._failed(cname, xml, exc, replace)
        return self._track(DeployedApp(cname, ctx, folder=doc_base, descriptor=xml))

    def _install(self, ctx, replace):
        self.host.install_child(ctx, replace=replace.context if replace is not None else None,
                                drain_timeout=getattr(ctx, "unload_delay", 2000) / 1000.0,
                                verify=support.verify_context, handover=support.carry_sessions)

    def _track(self, app):
        app.snapshot()
        self.apps[app.cname.name] = app
        self.failed.pop(app.descriptor or app.war or app.folder, None)
        return app.context

    def _failed(self, cname, artifact, exc, replace):
        reason = support.describe(exc)
        if replace is not None:
            log.error("%s: redeploying %s from %s failed: %s; the previous version keeps serving",
                      self.host.name, cname.display, artifact, reason,
                      exc_info=not isinstance(exc, DeployError))
            replace.snapshot()      # don't retry the same broken files on every tick
        else:
            log.error("%s: deploying %s from %s failed: %s", self.host.name, cname.display, artifact,
                      reason, exc_info=not isinstance(exc, DeployError))
        self.failed[artifact] = support.artifact_signature(artifact)
        return None

    def redeploy(self, app):
        if app.descriptor:
            return self.deploy_descriptor(app.cname, app.descriptor, replace=app)
        if app.war:
            return self.deploy_war(app.cname, app.war, replace=app)
        return self.deploy_directory(app.cname, app.folder, replace=app)

    def reload(self, app):
        """Stop and start the same Context; its requests wait meanwhile (Tomcat's paused reload)."""
        host, ctx = self.host, app.context
        host.pause_context(ctx)
        try:
            host.drain(ctx, getattr(ctx, "unload_delay", 2000) / 1000.0)
            ctx.stop()
            with support.app_loader_bound(ctx):
                ctx.start()
            support.verify_context(ctx)
            log.info("%s: reloading context %s is completed", host.name, app.cname.display)
        except Exception as exc:
            log.error("%s: reloading %s failed: %s", host.name, app.cname.display, support.describe(exc),
                      exc_info=not isinstance(exc, DeployError))
        finally:
            host.resume_context(ctx)
            app.snapshot()

    def undeploy(self, app, remove_files=False):
        """Stop the app and take it out of the Host; remove its work folder (the sessions it just
        saved there must not come back with the next deploy of the same name, as in Tomcat) and,
        with remove_files, its folder."""
        with self.lock, cooperative():
            self.apps.pop(app.cname.name, None)
            log.info("%s: undeploying context %s", self.host.name, app.cname.display)
            work = support.app_work_dir(app.context)     # while the Context still knows its Host
            try:
                self.host.retire_child(app.context, getattr(app.context, "unload_delay", 2000) / 1000.0)
            except Exception:
                log.exception("%s: stopping %s failed", self.host.name, app.cname.display)
            if remove_files and app.folder and os.path.isdir(app.folder):
                support.remove_tree(app.folder, support.owned_roots(self.host))
            if work and os.path.lexists(work):
                root = support.host_work_root(self.host)
                if resolve_inside(work, [root]) is None:
                    # a workDir configured elsewhere is the user's folder, not ours to delete
                    log.warning("%s: the work folder %s of %s is left in place: it is not inside %s",
                                self.host.name, work, app.cname.display, root)
                else:
                    support.remove_tree(work, [root])

    # -- for the manager API ------------------------------------------------------------------------
    def deploy_now(self, cname):
        """Deploy (or redeploy) ``cname`` from what is in appBase now, without waiting for a tick."""
        with self.lock, cooperative():
            app = self.apps.get(cname.name)
            app_base = self.host.get_app_base_path()
            war = os.path.join(app_base, cname.base_name + ".war")
            folder = os.path.join(app_base, cname.base_name)
            self.failed.pop(war, None), self.failed.pop(folder, None), self.pending.forget(war)
            if os.path.isfile(war):
                return self.deploy_war(cname, war, replace=app)
            if os.path.isdir(folder):
                return self.deploy_directory(cname, folder, replace=app)
            raise DeployError("nothing to deploy for %s in %s" % (cname.display, app_base))

    def install_war(self, cname, source, move=False):
        """Put the WAR ``source`` into appBase as ``<base name>.war`` and deploy it now (a redeploy
        when ``cname`` is deployed: the new version starts beside the old one and is swapped in).
        ``move``: rename ``source`` (a finished transfer in the farm's tempDir) rather than copy it.
        Returns the Context; DeployError when the deploy failed, and then appBase is as it was (the
        new WAR removed, a WAR it replaced put back) and any previous version keeps serving.
        The deploy channel (``pycat deploy``) and the farm deployer both come through here."""
        app_base = self.host.get_app_base_path()
        target = os.path.join(app_base, cname.base_name + ".war")
        with self.lock:      # no background check sees appBase until this is over
            # a WAR of the same name is kept aside (hidden: scans skip it) to be put back on failure
            replaced = support.sibling(target, "replaced") if os.path.isfile(target) else None
            if replaced is not None:
                support.remove_tree(replaced, [app_base])
                os.rename(target, replaced)
            ctx = None
            placed = False
            try:
                place_file(source, target, move)
                placed = True
                ctx = self.deploy_now(cname)
            finally:
                if ctx is None:
                    # deploy_war already put back or removed the expanded folder: the new WAR goes,
                    # the one it replaced comes back
                    if placed:
                        support.remove_tree(target, [app_base])
                    if replaced is not None:
                        os.rename(replaced, target)
                    self.restored(cname, target)
                elif replaced is not None:
                    support.remove_tree(replaced, [app_base])
        if ctx is None:
            raise DeployError("deploying %s failed (the reason is in the server log); "
                              "any previous version keeps serving" % cname.display)
        return ctx

    def remove_app(self, cname, missing_ok=False):
        """Undeploy ``cname`` and delete what Tomcat's manager deletes: ``<base>.war`` and
        ``<base>/`` in appBase, ``<base>.xml`` in the config base when it is the app's descriptor
        (never a docBase outside appBase), and the app's work folder. DeployError when pycat did
        not deploy it, unless ``missing_ok`` (then only its files in appBase go)."""
        with self.lock:
            app = self.apps.get(cname.name)
            if app is None and not missing_ok:
                raise DeployError("no application %s deployed by pycat on %s" % (cname.display, self.host.name))
            if app is not None:
                # the folder a WAR was expanded into goes with it; a docBase elsewhere is never touched
                self.undeploy(app, remove_files=app.expanded)
            app_base = self.host.get_app_base_path()
            support.remove_tree(os.path.join(app_base, cname.base_name + ".war"), [app_base])
            support.remove_tree(os.path.join(app_base, cname.base_name), [app_base])
            self.pending.forget(os.path.join(app_base, cname.base_name + ".war"))
            config_base = self.config_base()
            descriptor = os.path.join(config_base, cname.base_name + ".xml")
            if app is not None and app.descriptor and \
                    os.path.realpath(app.descriptor) == os.path.realpath(descriptor):
                support.remove_tree(descriptor, [config_base])
            return app is not None

    # -- for the manager web app (webapps/manager: /manager/text start, stop, reload, deploy) ------
    # The manager reaches this object as ``context.parent.deployer`` (the Host's, set on its
    # before_start event); these are the whole of what it may ask, each under the deployer's
    # lock so a command never interleaves with a background check or another deploy.
    def is_deployed(self, cname):
        """True when this deployer deployed ``cname`` (so it may undeploy it); a Context that
        server.xml defines is not (Tomcat's HostConfig.isDeployed)."""
        app = self.apps.get(cname.name)
        return app is not None and (app.war or app.folder or app.descriptor) is not None \
            and _find_child(self.host, cname.name) is app.context

    def stop_app(self, ctx):
        """Stop a Context and keep it in the Host (Tomcat's manager stop): its requests in flight
        finish first (up to its unloadDelay); later ones are answered 503 by the Context valve."""
        with self.lock, cooperative():
            self.host.drain(ctx, getattr(ctx, "unload_delay", 2000) / 1000.0)
            ctx.stop()

    def start_app(self, ctx):
        """Start a stopped Context again with the app's own import loader bound, as a deploy
        does; DeployError (the reason) when it does not come up."""
        with self.lock, cooperative():
            try:
                with support.app_loader_bound(ctx):
                    ctx.start()
                support.verify_context(ctx)
            except Exception as exc:
                raise DeployError(support.describe(exc)) from exc
            app = self.apps.get(ctx.name)
            if app is not None and app.context is ctx:
                app.snapshot()

    def reload_app(self, ctx):
        """Reload a running Context now (requests wait meanwhile), whether this deployer or
        server.xml made it. DeployError when it did not come back."""
        with self.lock, cooperative():
            app = self.apps.get(ctx.name)
            if app is None or app.context is not ctx:
                app = DeployedApp(ContextName(ctx.path, getattr(ctx, "webapp_version", "")), ctx)
            self.reload(app)
            if not ctx.state.available:
                raise DeployError("%s did not start again (the reason is in the server log)" % app.cname.display)

    def install_directory(self, cname, source):
        """Copy the folder ``source`` into appBase as ``<base name>/`` and deploy it now (Tomcat's
        manager ``deploy?war=/some/folder``). The copy is made beside the target under a hidden
        name and renamed into place, so no scan sees it half done; it refuses symbolic links and
        the Host's expansion limits (maxExpandedSize, maxExpandedEntries) apply as to a WAR. On
        failure appBase is as it was. A ``source`` that already is that folder is deployed in
        place. Returns the Context; DeployError when the deploy failed."""
        app_base = self.host.get_app_base_path()
        target = os.path.join(app_base, cname.base_name)
        with self.lock:
            if os.path.realpath(source) == os.path.realpath(target):
                return self.deploy_now(cname)
            if cname.name in self.apps or os.path.lexists(target) or \
                    os.path.lexists(os.path.join(app_base, cname.base_name + ".war")):
                raise DeployError("%s already has files in %s; undeploy it first" % (cname.display, app_base))
            staging = support.sibling(target, "uploading")
            support.remove_tree(staging, [app_base])
            try:
                support.copy_app_folder(source, staging, getattr(self.host, "max_expanded_size", None),
                                        getattr(self.host, "max_expanded_entries", None))
                os.rename(staging, target)
            except Exception:
                support.remove_tree(staging, [app_base])
                raise
            ctx = self.deploy_now(cname)
            if ctx is None:
                support.remove_tree(target, [app_base])
                self.failed.pop(target, None)
                raise DeployError("deploying %s failed (the reason is in the server log)" % cname.display)
            return ctx

    def restored(self, cname, war):
        """The deploy channel put ``war`` back as it was before a failed deploy_now: what the
        app serving ``cname`` (if any) runs is the baseline again, not a change to redeploy."""
        with self.lock:
            self.failed.pop(war, None), self.pending.forget(war)
            app = self.apps.get(cname.name)
            if app is not None:
                app.snapshot()


def _find_child(host, name):
    find = getattr(host, "find_child", None)
    if find is not None:
        return find(name)
    return (getattr(host, "children", None) or {}).get(name)
