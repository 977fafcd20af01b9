"""Host: a virtual host and its web applications (Tomcat's StandardHost).

Deployment is done by a lifecycle listener (the startup package's HostConfig) reacting to this
Host's ``start`` and ``periodic`` events. On start the Host puts an ErrorReportValve (its
``errorReportValveClass``) at the end of its valves unless one is configured. Its basic valve
runs the mapped Context's pipeline and then applies the Context's <error-page> rules.

What the deployer needs from the Host:

* ``install_child(new, replace=old)``: the new Context is started *outside* the tree and only
  then swapped in, in one step (no request sees a half-started app; a failed start changes
  nothing); the old one leaves the tree at once and is stopped when its in-flight requests are
  done (``drain``). ``retire_child`` is the undeploy half of it.
* ``pause_context`` / ``resume_context``: while a Context reloads, its requests wait on an
  Event in the basic valve (then are mapped again onto the restarted Context) instead of failing.
* Parallel ``##`` versions of one path: children are kept ordered so the mapper (which keeps
  the last Context per path) maps the newest version; the basic valve moves a request whose
  session id (cookie or ``;jsessionid=``) names a live session of an older version there.
"""
import logging
import os
import time

import gevent
import gevent.event

from pycat import reflect
from pycat.attrs import Attr
from pycat.errors import EXCEPTION_ATTR, BadRequest
from pycat.core.container import ContainerBase
from pycat.core.error_page import apply_error_page
from pycat.core.pipeline import Valve
from pycat.lifecycle import LifecycleState
from pycat.session.cookies import parse_cookie_ids, uri_param_name
from pycat.webapp.loader import current as _current_loader
from pycat.webapp.war import DEFAULT_MAX_EXPANDED_ENTRIES, version_key

log = logging.getLogger(__name__)


_STARTED = LifecycleState.STARTED
_set_loader, _reset_loader = _current_loader.set, _current_loader.reset    # bound once: per request
# the class of the Contexts a Host deploys unless its contextClass says otherwise (the deployer uses it too)
DEFAULT_CONTEXT_CLASS = "pycat.core.context:Context"


class StandardHostValve(Valve):
    def invoke(self, request, response):
        host = self.container
        context = request.context
        # route() only has work when a reload is pausing some Context, there are parallel ##
        # versions, or the Context is not started; the common case skips the call
        if context is not None and (host._paused or host._versions or context._state is not _STARTED):
            context = host.route(request, context)
        if context is None:
            response.send_error(404, "The requested resource [%s] is not available" % request.request_uri)
            return
        loader = context.loader
        token = _set_loader(loader if getattr(loader, "prefix", None) else None)
        context.inflight_requests += 1      # drain() waits for these before stopping a retired Context
        try:
            context.pipeline.first.invoke(request, response)
        except BadRequest as exc:  # a valve (an authenticator) read a malformed body: as the Wrapper
            log.info("Bad request body for %s: %s", request.request_uri, exc)
            if not response.committed:
                response.send_error(400)
            else:
                response.abort()
        except Exception as exc:   # a valve below failed: same treatment as a servlet exception
            log.exception("Exception processing %s", request.request_uri)
            request.set_attribute(EXCEPTION_ATTR, exc)
            response.send_error(500)
        finally:
            _reset_loader(token)
            left = context.inflight_requests = context.inflight_requests - 1
            if not left and context.drained is not None:   # a drain() waits: wake it (rare)
                context.drained.set()
        if response.is_error:
            apply_error_page(context, request, response)
        else:
            attributes = request.attributes     # most often empty: no lookup then
            if attributes and attributes.get(EXCEPTION_ATTR) is not None:
                apply_error_page(context, request, response)


class Host(ContainerBase):
    tolerate_child_failures = True

    name = Attr(str, "localhost", "Host name (matched against the Host header)")
    app_base = Attr(str, "webapps", "Folder of web applications, relative to CATALINA_BASE")
    xml_base = Attr(str, None, "Folder of context descriptors")
    unpack_wars = Attr(bool, True, "Expand WARs into appBase", xml="unpackWARs")
    auto_deploy = Attr(bool, True, "Deploy/redeploy changes found by background processing")
    deploy_on_startup = Attr(bool, True, "Deploy appBase when the Host starts")
    deploy_ignore = Attr(str, None, "Regex of appBase entries not to deploy")
    deploy_xml = Attr(bool, True, "Honour META-INF/context.xml", xml="deployXML")
    copy_xml = Attr(bool, False, "Copy META-INF/context.xml to the config base", xml="copyXML")
    create_dirs = Attr(bool, True, "Create appBase if missing")
    context_class = Attr(str, DEFAULT_CONTEXT_CLASS, "Class of deployed contexts")
    error_report_valve_class = Attr(str, "pycat.valves.error_report:ErrorReportValve",
                                    "Valve added to render error pages; empty disables")
    work_dir = Attr(str, None, "Work folder")
    start_stop_threads = Attr(int, 1, "Kept for compatibility")
    undeploy_old_versions = Attr(bool, False, "Undeploy old ## versions without sessions")
    fail_ctx_if_servlet_start_fails = Attr(bool, False, "A failing load-on-startup servlet fails its Context")
    legacy_app_base = Attr(str, None, "Tomcat 10.1 legacy app base (kept)")
    xml_validation = Attr(bool, False, "Kept for compatibility")
    xml_namespace_aware = Attr(bool, False, "Kept for compatibility")

    max_expanded_size = Attr(int, 512 * 1024 * 1024, "Largest total size (bytes) a WAR may expand to; "
                             "a bigger WAR is not deployed (-1: no limit)")
    max_expanded_entries = Attr(int, DEFAULT_MAX_EXPANDED_ENTRIES, "Most entries (files and folders) a "
                                "WAR may hold; a WAR with more is not deployed (-1: no limit)")
    deploy_api = Attr(bool, True, "Accept pycat deploy/undeploy/list on 127.0.0.1 (token file in work/)")
    reload_hold_timeout = Attr(float, 30.0, "Seconds a request waits for its Context to finish a reload")

    def __init__(self):
        super().__init__()
        self.aliases = []
        self._versions = {}      # context path -> [contexts], newest ## version first (only if > 1)
        self._paused = {}        # context -> Event set when its reload is over
        # the object that deploys this Host's apps (startup's HostConfig sets itself here when the
        # Host starts): the deploy channel and a farm deployer act through it, never by import
        self.deployer = None
        self.pipeline.set_basic(StandardHostValve())

    # -- children: atomic replacement, ## versions -------------------------------------------------
    def add_child(self, child):
        super().add_child(child)
        self._order_children()

    def remove_child(self, child):
        super().remove_child(child)
        self._order_children()

    def install_child(self, child, replace=None, drain_timeout=2.0, verify=None, handover=None):
        """Start ``child`` outside the tree, then put it in (instead of ``replace``) in one step,
        so requests go from the old Context to the new one with no gap; then stop the old one
        once its in-flight requests are done (up to drain_timeout seconds). If the start (or
        ``verify(child)``) fails, the child is stopped, the tree is unchanged and the error
        propagates. With ``handover(child, replace)`` (e.g. taking over the old one's saved
        sessions) the new child's requests wait until it has run, after the old one stopped."""
        if replace is None and child.name in self.children:
            raise ValueError("%s already has a child named %r" % (self.component_name, child.name))
        child.parent = self
        try:
            bound = getattr(getattr(child, "loader", None), "bound", None)
            if bound is not None:       # imports made while the app starts resolve to the app
                with bound():
                    child.start()
            else:
                child.start()
        except BaseException:
            child.parent = None
            raise
        try:
            if not child.state.available:
                raise RuntimeError("%s did not start (state %s)" % (child.component_name, child.state.value))
            if verify is not None:
                verify(child)
        except BaseException:
            try:
                child.stop()
            except Exception:
                log.exception("Host %s: stopping %s after its failed start", self.name, child.component_name)
            child.parent = None
            raise
        hold = replace is not None and handover is not None
        if hold:
            self.pause_context(child)
        try:
            if replace is not None and self.children.get(replace.name) is replace:
                del self.children[replace.name]
            self.children[child.name] = child
            self._order_children()
            if replace is not None:
                self.retire_child(replace, drain_timeout)
                if handover is not None:
                    try:
                        handover(child, replace)
                    except Exception:
                        log.exception("Host %s: handing %s over to %s failed", self.name,
                                      replace.component_name, child.component_name)
        finally:
            if hold:
                self.resume_context(child)
        return child

    def retire_child(self, child, drain_timeout=2.0):
        """Take ``child`` out of the tree at once, stop it when its requests are done."""
        if self.children.get(child.name) is child:
            del self.children[child.name]
            self._order_children()
        self.drain(child, drain_timeout)
        try:
            child.stop()
        finally:
            child.parent = None

    def drain(self, child, timeout):
        """Wait (up to ``timeout`` seconds) until ``child`` has no request in flight. The Host
        valve sets ``child.drained`` (an Event, present only while a drain waits) when the count
        drops to 0, so the wait ends as soon as the last request leaves, without polling."""
        if child.inflight_requests <= 0:
            return
        deadline = time.monotonic() + timeout
        event = child.drained
        if event is None:
            event = child.drained = gevent.event.Event()
        child.drain_waiters += 1
        try:
            while child.inflight_requests > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.info("Host %s: %d request(s) still in %s after %.1fs; stopping it anyway",
                             self.name, child.inflight_requests, child.component_name, timeout)
                    break
                event.clear()
                event.wait(remaining)
        finally:
            child.drain_waiters -= 1
            if not child.drain_waiters:
                child.drained = None

    def _order_children(self):
        """Newest ## version last for each path (the mapper keeps the last one), and the
        version lists the valve uses for session stickiness."""
        items = sorted(self.children.items(),
                       key=lambda kv: (getattr(kv[1], "path", ""),
                                       version_key(getattr(kv[1], "webapp_version", "") or "")))
        self.children = dict(items)
        versions = {}
        for child in self.children.values():
            versions.setdefault(getattr(child, "path", None), []).insert(0, child)
        self._versions = {p: v for p, v in versions.items() if len(v) > 1}
        self._children_changed()

    # -- reload: requests wait instead of failing ----------------------------------------------------
    def pause_context(self, context):
        self._paused.setdefault(context, gevent.event.Event())

    def resume_context(self, context):
        gate = self._paused.pop(context, None)
        if gate is not None:
            gate.set()

    # -- request routing (called by the basic valve) ----------------------------------------------
    def route(self, request, context):
        """The Context that serves this request: waits while it reloads; for parallel ##
        versions, an older version that knows the request's session keeps it."""
        gate = self._paused.get(context)
        if gate is not None:
            gate.wait(self.reload_hold_timeout)
            return self._remap(request, context)
        if not context.state.available and context.parent is not self:
            # replaced between mapping and now: map again on the fresh tree
            return self._remap(request, context)
        versions = self._versions.get(context.path) if self._versions else None
        if versions is not None:
            chosen = self._version_for_session(request, versions)
            if chosen is not None and chosen is not context:
                self._switch(request, chosen)
                return chosen
        return context

    def _remap(self, request, context):
        engine = self.get_engine()
        if engine is None:
            return context
        request.apply_mapping(engine.mapper.map(request.get_header("host"), request.decoded_uri))
        if request.context is None or request.context is context:
            return request.context
        return self.route(request, request.context)

    @staticmethod
    def _version_for_session(request, versions):
        ids = []
        for ctx in versions:
            name = getattr(ctx, "session_cookie_name", None) or "JSESSIONID"
            ids = parse_cookie_ids(request.get_header("cookie"), name)
            params = request.path_parameters
            if params:
                value = params.get(uri_param_name(name))
                if value:
                    ids.append(value)
            break
        if not ids:
            return None
        for ctx in versions:
            manager = getattr(ctx, "manager", None)
            find = getattr(manager, "find_session", None)
            if find is None or not ctx.state.available:
                continue
            for sid in ids:
                try:
                    if find(sid) is not None:
                        return ctx
                except Exception:
                    log.debug("find_session(%r) failed in %s", sid, ctx.component_name, exc_info=True)
        return None

    @staticmethod
    def _switch(request, context):
        request.context = context
        if request.mapping_redirect is None:
            rel = request.servlet_path + (request.path_info or "")
            request.wrapper, request.servlet_path, request.path_info, request.match_type = \
                context.servlet_map.match(rel or "/")

    def add_alias(self, alias):
        alias = (alias or "").strip().lower()
        if alias and alias not in self.aliases:
            self.aliases.append(alias)
            self._children_changed()

    def remove_alias(self, alias):
        if alias.lower() in self.aliases:
            self.aliases.remove(alias.lower())
            self._children_changed()

    def get_app_base_path(self):
        base = os.path.expanduser(self.app_base or "webapps")
        if not os.path.isabs(base):
            base = os.path.join(self.catalina_base, base)
        return os.path.abspath(base)

    def _start(self):
        if self.create_dirs:
            try:
                os.makedirs(self.get_app_base_path(), exist_ok=True)
            except OSError as exc:
                log.warning("Host %s: cannot create appBase %s: %s", self.name, self.get_app_base_path(), exc)
        if self.error_report_valve_class:
            self._add_error_report_valve()
        super()._start()

    def _add_error_report_valve(self):
        try:
            cls = reflect.load_class(self.error_report_valve_class)
        except Exception:
            log.exception("Host %s: cannot load errorReportValveClass %s", self.name,
                          self.error_report_valve_class)
            return
        if self.pipeline.find_valve(cls) is None:
            self.pipeline.insert_valve(len(self.pipeline.valves), cls())
