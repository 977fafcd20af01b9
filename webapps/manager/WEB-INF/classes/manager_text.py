"""The manager's text interface, /manager/text/<command> (Tomcat's ManagerServlet), for scripts.

Answers are Tomcat's, word for word, so scripts and CI steps written for Tomcat's manager work
unchanged: a first line ``OK - ...`` or ``FAIL - ...``, then the command's lines, as text/plain.
The commands: list, deploy (``war=`` a WAR or folder on this machine; or PUT with the WAR as the
body), undeploy, reload, start, stop, serverinfo, sessions, expire (``idle=`` minutes), resources.

How it reaches the container: the servlet's Context is ``self.servlet_context``; its parent is the
Host, whose deployer (``host.deployer``, the HostConfig) does every change through the methods it
keeps for this (install_war, install_directory, remove_app, start_app, stop_app, reload_app,
is_deployed), under its own lock. Nothing here touches appBase directly: where files go, and that
they stay inside the folders the Host owns, is the deployer's business.

Protection is the container's, configured in this app's web.xml and META-INF/context.xml as Tomcat
ships it: BASIC login, role manager-script, and only local addresses. Every command that changes
something is logged (logger ``pycat.manager``) with the user, the client address and the result.
"""
import html
import logging
import os
import platform
import sys

import pycat
from pycat.errors import DeployError
from pycat.webapp.servlet import HttpServlet
from pycat.webapp.war import parse_context_name

log = logging.getLogger("pycat.manager")

DEFAULT_MAX_UPLOAD = 50 * 1024 * 1024
CHUNK = 64 * 1024

# Tomcat's LocalStrings (org.apache.catalina.manager), the ones this servlet answers with
MSG = {
    "alreadyContext": "FAIL - Application already exists at path [{0}]",
    "deployFailed": "FAIL - Failed to deploy application at context path [{0}]",
    "deployed": "OK - Deployed application at context path [{0}]",
    "deployedButNotStarted": "FAIL - Deployed application at context path [{0}] but context failed to start",
    "exception": "FAIL - Encountered exception [{0}]",
    "inService": "FAIL - The application [{0}] is already being serviced",
    "invalidPath": "FAIL - Invalid context path [{0}] was specified",
    "listed": "OK - Listed applications for virtual host [{0}]",
    "listitem": "{0}:{1}:{2}:{3}",
    "noCommand": "FAIL - No command was specified",
    "noContext": "FAIL - No context exists named [{0}]",
    "noGlobal": "FAIL - No global JNDI resources are available",
    "noManager": "FAIL - No manager exists for path [{0}]",
    "noSelf": "FAIL - The manager cannot reload, undeploy, stop, or undeploy itself",
    "notDeployed": "FAIL - Context [{0}] is defined in server.xml and may not be undeployed",
    "reloaded": "OK - Reloaded application at context path [{0}]",
    "resourcesAll": "OK - Listed global resources of all types",
    "resourcesType": "OK - Listed global resources of type [{0}]",
    "serverInfo": "OK - Server info\nTomcat Version: [{0}]\nOS Name: [{1}]\nOS Version: [{2}]\n"
                  "OS Architecture: [{3}]\nJVM Version: [{4}]\nJVM Vendor: [{5}]",
    "sessiondefaultmax": "Default maximum session inactive interval is [{0}] minutes",
    "sessions": "OK - Session information for application at context path [{0}]",
    "sessiontimeout": "Inactive for [{0}] minutes: [{1}] sessions",
    "sessiontimeout.expired": "Inactive for [{0}] minutes: [{1}] sessions were expired",
    "sessiontimeout.unlimited": "Unlimited time: [{0}] sessions",
    "startFailed": "FAIL - Application at context path [{0}] could not be started",
    "started": "OK - Started application at context path [{0}]",
    "stopped": "OK - Stopped application at context path [{0}]",
    "undeployed": "OK - Undeployed application at context path [{0}]",
    "unknownCommand": "FAIL - Unknown command [{0}]",
}


def msg(key, *args):
    text = MSG[key]
    for i, arg in enumerate(args):
        text = text.replace("{%d}" % i, str(arg))
    return text


def _filter(text):
    # Tomcat's RequestUtil.filter on names echoed back (an HTML client may show the answer)
    return html.escape("" if text is None else str(text), quote=True)


class Reply:
    """The answer's lines, sent at the end as one text/plain body."""

    def __init__(self):
        self.lines = []

    def __call__(self, line):
        self.lines.append(line)

    @property
    def first(self):
        return self.lines[0] if self.lines else ""


class ManagerServlet(HttpServlet):

    def init(self, config):
        super().init(config)
        try:
            self.max_upload = int(self.get_init_parameter("maxUploadSize", DEFAULT_MAX_UPLOAD))
        except ValueError:
            self.max_upload = DEFAULT_MAX_UPLOAD

    # -- what the servlet acts on ----------------------------------------------------------
    @property
    def context(self):
        return self.servlet_context

    @property
    def host(self):
        return self.context.parent

    def deployer(self):
        deployer = getattr(self.host, "deployer", None)
        if deployer is None:
            raise DeployError("Host %s has no deployer" % self.host.name)
        return deployer

    # -- HTTP ----------------------------------------------------------------------------------
    def do_get(self, request, response):
        out = Reply()
        command = request.path_info
        cn = self._context_name(request, out)
        if command is None or command in ("", "/"):
            out(msg("noCommand"))
        elif command == "/list":
            self.list(out)
        elif command == "/serverinfo":
            self.serverinfo(out)
        elif command == "/resources":
            self.resources(out, request.get_parameter("type"))
        elif command == "/sessions":
            self.sessions(out, cn, -1, request)
        elif command == "/expire":
            idle = request.get_parameter("idle")
            try:
                idle = int(idle) if idle is not None else -1
            except ValueError:
                log.info("Manager: could not parse the idle parameter %r as an integer", idle)
                idle = -1
            self.sessions(out, cn, idle, request)
        elif command == "/deploy":
            war = request.get_parameter("war") or None
            if request.get_parameter("config"):
                out(msg("exception", "deploying a context descriptor (config=) is not supported by pycat yet"))
            elif war is None:
                out(msg("exception", "the war parameter is required (a WAR file or a folder on this machine)"))
            else:
                self.deploy_local(out, cn, war, request.get_parameter("update") == "true", request)
        elif command == "/undeploy":
            self.undeploy(out, cn, request)
        elif command == "/reload":
            self.reload(out, cn, request)
        elif command == "/start":
            self.start(out, cn, request)
        elif command == "/stop":
            self.stop(out, cn, request)
        else:
            out(msg("unknownCommand", _filter(command)))
        self._send(response, out)

    def do_put(self, request, response):
        out = Reply()
        command = request.path_info
        cn = self._context_name(request, out)
        if command is None or command in ("", "/"):
            out(msg("noCommand"))
        elif command == "/deploy":
            self.deploy_upload(out, cn, request.get_parameter("update") == "true", request, response)
        else:
            out(msg("unknownCommand", _filter(command)))
        self._send(response, out)

    @staticmethod
    def _send(response, out):
        response.content_type = "text/plain;charset=utf-8"
        # text/plain is meant: an old browser must not sniff it into HTML (Tomcat sets it too)
        response.set_header("X-Content-Type-Options", "nosniff")
        response.write("".join(line + "\n" for line in out.lines))

    def _context_name(self, request, out):
        """Tomcat's ContextName from path= (and version=); for deploy without path=, from the
        war= file name. None if there is none or it is not a valid name (invalidPath is then
        answered by the command that needs it)."""
        path = request.get_parameter("path")
        version = request.get_parameter("version")
        try:
            if path is not None:
                if path != "" and not path.startswith("/"):
                    return None
                text = path or "/"
                if version:
                    text += "##" + version
                return parse_context_name(text)
            war = request.get_parameter("war")
            if war:
                base = os.path.basename(war[5:] if war.startswith("file:") else war.rstrip("/"))
                return parse_context_name(base)
        except DeployError as exc:
            log.info("Manager: %s", exc)
        return None

    def _valid(self, out, cn, request):
        if cn is not None:
            return True
        out(msg("invalidPath", _filter(request.get_parameter("path"))))
        return False

    def _find(self, out, cn):
        ctx = self.host.find_child(cn.name)
        if ctx is None:
            out(msg("noContext", _filter(cn.display)))
        return ctx

    def _is_self(self, ctx):
        return ctx is self.context or ctx.name == self.context.name

    def _audit(self, request, command, cn, out):
        """One log line per state-changing command: who, from where, what, and the answer."""
        addr = request.remote_addr
        peer = request.peer_addr
        source = addr if peer in (None, "", addr) else "%s (via %s)" % (addr, peer)
        log.info("Manager: %s %s by user [%s] from [%s]: %s", command, cn.display if cn is not None
                 else "[%s]" % request.get_parameter("path"), request.remote_user, source, out.first)

    # -- commands --------------------------------------------------------------------------------
    def list(self, out):
        host = self.host
        out(msg("listed", host.name))
        app_base = host.get_app_base_path()
        for ctx in host.find_children():
            display = ctx.path or "/"
            if getattr(ctx, "webapp_version", ""):
                display += "##" + ctx.webapp_version
            if ctx.state.available:
                out(msg("listitem", display, "running", _session_count(ctx), _doc_base(ctx, app_base)))
            else:
                out(msg("listitem", display, "stopped", 0, _doc_base(ctx, app_base)))

    def serverinfo(self, out):
        uname = platform.uname()
        out(msg("serverInfo", pycat.SERVER_INFO, uname.system, uname.release, uname.machine,
                "%s %s" % (platform.python_implementation(), platform.python_version()),
                _vendor()))

    def resources(self, out, type_name):
        server = self.host.get_server() if hasattr(self.host, "get_server") else None
        naming = getattr(server, "global_naming_resources", None)
        if naming is None:
            out(msg("noGlobal"))
            return
        out(msg("resourcesType", _filter(type_name)) if type_name else msg("resourcesAll"))
        for record in getattr(naming, "resources", ()):
            kind = record.get("type") or ""
            if type_name and kind != type_name:
                continue
            out("%s:%s" % (record.name, kind))

    def sessions(self, out, cn, idle, request):
        if not self._valid(out, cn, request):
            return
        ctx = self._find(out, cn)
        if ctx is None:
            return
        manager = getattr(ctx, "manager", None)
        if manager is None:
            out(msg("noManager", _filter(cn.display)))
            return
        # Tomcat's histogram: at most 60 rows of whole minutes, up to the session timeout
        max_count, interval = 60, 1
        timeout_minutes = getattr(ctx, "session_timeout", 30) or 0
        if timeout_minutes > 0:
            interval = -(-timeout_minutes // max_count) or 1
            max_count = -(-timeout_minutes // interval)
        out(msg("sessions", cn.display))
        out(msg("sessiondefaultmax", timeout_minutes))
        counts = [0] * (max_count + 1)
        unlimited = expired = 0
        try:
            sessions = list(manager.find_sessions()) if ctx.state.available else []
        except Exception as exc:
            log.exception("Manager: reading the sessions of %s failed", cn.display)
            out(msg("exception", "%s: %s" % (type(exc).__name__, exc)))
            return
        for session in sessions:
            seconds = int(session.idle_time())
            if idle >= 0 and seconds >= idle * 60:
                session.expire()
                expired += 1
            minutes = seconds // 60 // interval
            if minutes < 0:
                unlimited += 1
            elif minutes >= max_count:
                counts[max_count] += 1
            else:
                counts[minutes] += 1
        if counts[0]:
            out(msg("sessiontimeout", "<%d" % interval, counts[0]))
        for i in range(1, max_count):
            if counts[i]:
                out(msg("sessiontimeout", "%d - <%d" % (i * interval, (i + 1) * interval), counts[i]))
        if counts[max_count]:
            out(msg("sessiontimeout", ">=%d" % (max_count * interval), counts[max_count]))
        if unlimited:
            out(msg("sessiontimeout.unlimited", unlimited))
        if idle >= 0:
            out(msg("sessiontimeout.expired", ">%d" % idle, expired))
            self._audit(request, "expire(idle=%d)" % idle, cn, out)

    def deploy_local(self, out, cn, war, update, request):
        try:
            if not self._valid(out, cn, request):
                return
            if self.host.find_child(cn.name) is not None and not update:
                out(msg("alreadyContext", cn.display))
                return
            source = war[len("file:"):] if war.startswith("file:") else war
            if not os.path.isabs(source):
                out(msg("exception", "the war parameter must be an absolute path on this machine, not [%s]"
                        % _filter(war)))
                return
            deployer = self.deployer()
            try:
                if source.lower().endswith(".war") and os.path.isfile(source):
                    deployer.install_war(cn, source)
                elif os.path.isdir(source):
                    if update and deployer.is_deployed(cn):
                        deployer.remove_app(cn)
                    deployer.install_directory(cn, source)
                else:
                    out(msg("exception", "no WAR file or folder at [%s]" % _filter(source)))
                    return
            except DeployError as exc:
                log.warning("Manager: deploying %s from %s failed: %s", cn.display, source, exc)
            self._deploy_result(out, cn)
        finally:
            self._audit(request, "deploy(war=%s)" % war, cn, out)

    def deploy_upload(self, out, cn, update, request, response):
        """PUT /manager/text/deploy?path=/x: the body is the WAR. It is written beside its final
        place under a hidden name (scans skip it), never past maxUploadSize bytes, then the
        deployer moves it in and deploys it."""
        try:
            if not self._valid(out, cn, request):
                return
            if self.host.find_child(cn.name) is not None and not update:
                out(msg("alreadyContext", cn.display))
                return
            length = request.content_length
            if length is not None and length > self.max_upload:
                response.set_status(413)
                out(msg("exception", "the WAR of %d bytes is larger than maxUploadSize (%d bytes)"
                        % (length, self.max_upload)))
                return
            deployer = self.deployer()
            app_base = self.host.get_app_base_path()
            upload = os.path.join(app_base, ".%s.war.upload" % cn.base_name)
            try:
                size = 0
                with open(upload, "wb") as fh:
                    stream = request.input
                    while True:
                        chunk = stream.read(CHUNK)
                        if not chunk:
                            break
                        size += len(chunk)
                        if size > self.max_upload:
                            response.set_status(413)
                            out(msg("exception", "the WAR is larger than maxUploadSize (%d bytes)"
                                    % self.max_upload))
                            return
                        fh.write(chunk)
                if size == 0:
                    out(msg("exception", "the request body is empty: PUT the WAR file as the body"))
                    return
                try:
                    deployer.install_war(cn, upload, move=True)
                except DeployError as exc:
                    log.warning("Manager: deploying the uploaded WAR as %s failed: %s", cn.display, exc)
            finally:
                if os.path.lexists(upload):
                    os.unlink(upload)
            self._deploy_result(out, cn)
        finally:
            self._audit(request, "deploy(upload)", cn, out)

    def _deploy_result(self, out, cn):
        ctx = self.host.find_child(cn.name)
        if ctx is not None and ctx.state.available:
            out(msg("deployed", cn.display))
        elif ctx is not None:
            out(msg("deployedButNotStarted", cn.display))
        else:
            out(msg("deployFailed", cn.display))

    def undeploy(self, out, cn, request):
        try:
            if not self._valid(out, cn, request):
                return
            ctx = self._find(out, cn)
            if ctx is None:
                return
            if self._is_self(ctx):
                out(msg("noSelf"))
                return
            deployer = self.deployer()
            if not deployer.is_deployed(cn):
                out(msg("notDeployed", _filter(cn.display)))
                return
            try:
                deployer.remove_app(cn)
            except Exception as exc:
                log.exception("Manager: undeploying %s failed", cn.display)
                out(msg("exception", "%s: %s" % (type(exc).__name__, exc)))
                return
            out(msg("undeployed", cn.display))
        finally:
            self._audit(request, "undeploy", cn, out)

    def reload(self, out, cn, request):
        self._lifecycle(out, cn, request, "reload")

    def start(self, out, cn, request):
        self._lifecycle(out, cn, request, "start")

    def stop(self, out, cn, request):
        self._lifecycle(out, cn, request, "stop")

    def _lifecycle(self, out, cn, request, what):
        try:
            if not self._valid(out, cn, request):
                return
            ctx = self._find(out, cn)
            if ctx is None:
                return
            if what != "start" and self._is_self(ctx):
                out(msg("noSelf"))
                return
            try:
                if what == "stop":
                    self.deployer().stop_app(ctx)
                    out(msg("stopped", cn.display))
                elif what == "start":
                    self.deployer().start_app(ctx)
                    out(msg("started", cn.display) if ctx.state.available else msg("startFailed", cn.display))
                else:
                    if not ctx.state.available:
                        out(msg("exception", "Context [%s] has not been started" % cn.display))
                        return
                    self.deployer().reload_app(ctx)
                    out(msg("reloaded", cn.display))
            except Exception as exc:
                log.warning("Manager: %s of %s failed: %s", what, cn.display, exc)
                if what == "start":
                    out(msg("startFailed", cn.display))
                out(msg("exception", "%s: %s" % (type(exc).__name__, exc)))
        finally:
            self._audit(request, what, cn, out)


def _session_count(ctx):
    manager = getattr(ctx, "manager", None)
    if manager is None:
        return 0
    try:
        return len(manager.find_sessions())
    except Exception:
        return getattr(manager, "active_sessions", 0)


def _doc_base(ctx, app_base):
    """As Tomcat lists it: relative to appBase for the apps in it, else the full path."""
    doc_base = getattr(ctx, "doc_base_path", None) or ctx.doc_base or ""
    try:
        rel = os.path.relpath(os.path.realpath(doc_base), os.path.realpath(app_base))
    except ValueError:
        return doc_base
    return doc_base if rel.startswith("..") or os.path.isabs(rel) else rel


def _vendor():
    impl = platform.python_implementation()
    return {"CPython": "Python Software Foundation", "PyPy": "PyPy"}.get(impl, impl) + \
        (" (%s)" % sys.platform)


HELP_401 = """<!doctype html>
<html><head><meta charset="utf-8"><title>401 Unauthorized</title></head><body>
<h1>401 Unauthorized</h1>
<p>You are not authorized to view this page. If you have not changed any configuration files,
examine <code>conf/tomcat-users.xml</code> in your installation: it ships with no user. The HTML
interface (<code>/manager/html</code>) needs a user with the role <code>manager-gui</code>, the text
interface (<code>/manager/text</code>) one with the role <code>manager-script</code>, for example</p>
<pre>&lt;user username="admin" password="&lt;choose-one&gt;" roles="manager-gui"/&gt;
&lt;user username="deployer" password="&lt;choose-another&gt;" roles="manager-script"/&gt;</pre>
<p>inside <code>&lt;tomcat-users&gt;</code>. The realm reads the file again at the next login: no
restart is needed. Give <code>manager-script</code> only to the accounts of scripts and CI jobs, and
not to a user who also has <code>manager-gui</code>.</p>
</body></html>
"""

HELP_403 = """<!doctype html>
<html><head><meta charset="utf-8"><title>403 Access Denied</title></head><body>
<h1>403 Access Denied</h1>
<p>You are not authorized to view this page.</p>
<p>By default the manager is only reachable from a client on the same machine as the server
(127.0.0.1 or ::1). To reach it from elsewhere, edit the RemoteAddrValve in
<code>webapps/manager/META-INF/context.xml</code> (a redeploy follows).</p>
<p>If you logged in, your user lacks the role this interface needs: <code>/manager/html</code>
needs <code>manager-gui</code>; <code>/manager/text</code> needs <code>manager-script</code>;
<code>/manager/status</code> and <code>/manager/cluster</code> need <code>manager-status</code> (or
<code>manager-gui</code>, <code>manager-script</code>), and the cluster view's turnover switch
<code>manager-gui</code>. Add it to the user's roles in <code>conf/tomcat-users.xml</code>,
for example</p>
<pre>&lt;user username="deployer" password="&lt;choose-one&gt;" roles="manager-script"/&gt;</pre>
<p>If you have the role and came here from a button of the HTML manager, after using the browser's
back button, a saved bookmark or a page left open long enough that its session ended, you met the
protection against cross-site request forgery (CSRF): every action must carry a nonce recently issued
to your session. Open <a href="/manager/html">/manager/html</a> again and repeat the action from there.</p>
</body></html>
"""


class AccessHelpServlet(HttpServlet):
    """The error page for 401 and 403 (Tomcat's 401.jsp / 403.jsp): how to get in."""

    def service(self, request, response):
        status = request.get_attribute("javax.servlet.error.status_code") or response.status
        response.content_type = "text/html;charset=utf-8"
        if status == 401:
            if not response.get_header("WWW-Authenticate"):
                response.set_header("WWW-Authenticate", 'Basic realm="Tomcat Manager Application"')
            response.write(HELP_401)
        else:
            response.write(HELP_403)
