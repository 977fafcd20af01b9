"""Host: a virtual host and its web applications (Tomcat's StandardHost).

Deployment is done by a lifecycle listener (the startup package's HostConfig) reacting to this
Host's ``start`` and ``periodic`` events. On start the Host puts an ErrorReportValve (its
``errorReportValveClass``) at the end of its valves unless one is configured. Its basic valve
runs the mapped Context's pipeline and then applies the Context's <error-page> rules.
"""
import logging
import os

from pycat import reflect
from pycat.attrs import Attr
from pycat.core.container import ContainerBase
from pycat.core.error_page import apply_error_page
from pycat.core.pipeline import Valve

log = logging.getLogger(__name__)


class StandardHostValve(Valve):
    def invoke(self, request, response):
        context = request.context
        if context is None:
            response.send_error(404, "The requested resource [%s] is not available" % request.request_uri)
            return
        try:
            context.pipeline.first.invoke(request, response)
        except Exception as exc:   # a valve below failed: same treatment as a servlet exception
            log.exception("Exception processing %s", request.request_uri)
            request.set_attribute("pycat.error.exception", exc)
            response.send_error(500)
        if response.is_error or request.get_attribute("pycat.error.exception") is not None:
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
    context_class = Attr(str, "pycat.core.context:Context", "Class of deployed contexts")
    error_report_valve_class = Attr(str, "pycat.valves.error_report:ErrorReportValve",
                                    "Valve added to render error pages; empty disables")
    work_dir = Attr(str, None, "Work folder")
    start_stop_threads = Attr(int, 1, "Kept for compatibility")
    undeploy_old_versions = Attr(bool, False, "Undeploy old ## versions without sessions")
    fail_ctx_if_servlet_start_fails = Attr(bool, False, "A failing load-on-startup servlet fails its Context")
    legacy_app_base = Attr(str, None, "Tomcat 10.1 legacy app base (kept)")
    xml_validation = Attr(bool, False, "Kept for compatibility")
    xml_namespace_aware = Attr(bool, False, "Kept for compatibility")

    def __init__(self):
        super().__init__()
        self.aliases = []
        self.pipeline.set_basic(StandardHostValve())

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
