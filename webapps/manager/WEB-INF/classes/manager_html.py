"""The manager's HTML interface, /manager/html (Tomcat's HTMLManagerServlet), for people.

One server-rendered page (no script, a little CSS): the Host's applications with path, version,
display name, state and session count, and per application the forms Start, Stop, Reload,
Undeploy and "Expire sessions with idle >= N minutes"; a form deploying a WAR or folder that is
already on this machine, and one uploading a WAR; the server's information. Every action is a
POST to /manager/html/<command> and answers the same page with Tomcat's message line (``OK - ...``
or ``FAIL - ...``, in ``<div id="message">``). A GET of a command's URL changes nothing (Tomcat's
"Tried to use command [/stop] via a GET request but POST is required").

The commands are ManagerServlet's (manager_text.py), so the HTML and text interfaces act on the
container the same way, with the same checks and the same audit lines (logger ``pycat.manager``).

Upload (POST /manager/html/upload, multipart/form-data, the file in the field ``deployWar``): the
context path comes from the file's name as in Tomcat (``shop##2.war`` is /shop version 2; folders
in the name are dropped). The body is read in chunks through multipart_stream.MultipartReader
and the WAR written beside its final place in appBase under a hidden name, never past the
servlet's ``maxUploadSize`` bytes (a larger Content-Length is refused before reading; a chunked
body when it gets there); then the deployer moves it in and deploys it, as a PUT to
/manager/text/deploy does.

Protection is configuration (web.xml, META-INF/context.xml): BASIC login, role manager-gui only,
local clients only, and the CSRF filter (csrf_filter.py), which lets no request but the list
through without a nonce of the user's session; the forms' URLs carry the one it issued.
"""
import html
import logging
import os
import platform
import secrets
import socket
from urllib.parse import quote

import pycat
from pycat.errors import BadRequest, DeployError
from pycat.webapp.war import parse_context_name, version_key

from csrf_filter import NONCE_NAME
from manager_text import CHUNK, ManagerServlet, Reply, _session_count, _vendor, msg
from multipart_stream import MultipartError, MultipartReader, boundary_of

log = logging.getLogger("pycat.manager")

# Tomcat's LocalStrings for what only the HTML interface says
HTML_MSG = {
    "postCommand": "FAIL - Tried to use command [{0}] via a GET request but POST is required",
    "deployUploadFail": "FAIL - Deploy Upload Failed, Exception: [{0}]",
    "deployUploadInServerXml": "FAIL - War file [{0}] cannot be uploaded if context is defined in server.xml",
    "deployUploadNoFile": "FAIL - File upload failed, no file",
    "deployUploadNotWar": "FAIL - File uploaded [{0}] must be a .war",
    "deployUploadWarExists": "FAIL - War file [{0}] already exists on server",
}

ACTIONS = ("start", "stop", "reload", "undeploy", "expire")
LABELS = {"start": "Start", "stop": "Stop", "reload": "Reload", "undeploy": "Undeploy",
          "expire": "Expire sessions"}
MAX_PART_HEADER = 8192
MAX_PARTS = 16


def hmsg(key, *args):
    text = HTML_MSG[key]
    for i, arg in enumerate(args):
        text = text.replace("{%d}" % i, str(arg))
    return text


def upload_name(filename):
    """The WAR file name a client sent, as Tomcat takes it: None stays None, and whatever comes
    before the last '/' or '\\' (a browser on Windows sends C:\\builds\\shop.war) is dropped."""
    if filename is None:
        return None
    return filename.replace("\\", "/").rsplit("/", 1)[-1]


def printable(text):
    """``text`` with control characters written as escapes (names from clients go into messages
    and log lines; the page escapes HTML itself)."""
    text = str(text)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "".join(c.encode("unicode_escape").decode("ascii") if ord(c) < 32 or ord(c) == 127 else c
                       for c in text)
    return text


def upload_context_name(filename):
    """(ContextName, None) for an uploaded WAR's file name, else (None, the FAIL message).
    Tomcat's checks, plus: no control characters (a NUL or CR in a name ends up in logs and on disk)."""
    name = upload_name(filename)
    if name is None or not name.lower().endswith(".war"):
        return None, hmsg("deployUploadNotWar", printable(name))
    if printable(name) != name:
        return None, msg("invalidPath", printable(name))
    try:
        return parse_context_name(name), None
    except DeployError as exc:
        log.info("Manager: upload refused: %s", exc)
        return None, msg("invalidPath", name)


CSS = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;max-width:80em}
h1{font-size:1.4em;margin:0 0 .3em} h2{font-size:1.15em;margin:1.4em 0 .4em} h3{font-size:1em;margin:1em 0 .3em}
nav a{margin-right:.8em}
table{border-collapse:collapse;margin:.3em 0 1em} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef} td.sessions{text-align:right}
tr.app td.state{font-weight:600} tr.app.stopped td.state{color:#a00} tr.app.running td.state{color:#070}
td.commands form{display:inline-block;margin:0 .3em .2em 0} td.commands input[name=idle]{width:3.5em}
#message{white-space:pre-wrap;font-family:ui-monospace,monospace;padding:.4em .6em;border:1px solid #ccc;
  background:#f6f6f6;margin:.3em 0 1em} #message.ok{border-color:#7a7} #message.fail{border-color:#c66;background:#fdf2f2}
form.deploy label{display:inline-block;margin:0 .8em .3em 0} small{color:#666}
"""

HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),                 # the action buttons must not be framed (clickjacking)
    ("Referrer-Policy", "no-referrer"),          # the nonce is in URLs: keep it out of Referer headers
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
)


def _e(text):
    return html.escape("" if text is None else str(text), quote=True)


class HTMLManagerServlet(ManagerServlet):

    def init(self, config):
        super().init(config)
        self.serviced = set()            # names being uploaded now (Tomcat's isServiced)

    # -- HTTP ------------------------------------------------------------------------------------
    def do_get(self, request, response):
        command = request.path_info or ""
        message = ""
        if command in ("", "/", "/list"):
            pass
        elif command.lstrip("/") in ACTIONS or command in ("/upload", "/deploy"):
            message = hmsg("postCommand", printable(command))
        else:
            message = msg("unknownCommand", printable(command))
        self.render(request, response, message)

    def do_post(self, request, response):
        command = request.path_info or ""
        name = command.lstrip("/")
        if command == "/upload":
            message = self.upload(request, response)
        elif command == "/deploy":
            message = self.deploy_from_server(request)
        elif name in ACTIONS:
            out = Reply()
            cn = self._context_name(request, out)
            if name == "expire":
                idle = request.get_parameter("idle")
                try:
                    idle = int(idle) if idle not in (None, "") else -1
                except ValueError:
                    log.info("Manager: could not parse the idle parameter %r as an integer", idle)
                    idle = -1
                self.sessions(out, cn, idle, request)
            else:
                getattr(self, name)(out, cn, request)
            message = "\n".join(out.lines)
        elif command in ("", "/", "/list"):
            message = ""
        else:
            message = msg("unknownCommand", printable(command))
        self.render(request, response, message)

    # -- commands only the HTML interface has --------------------------------------------------------
    def deploy_from_server(self, request):
        """Tomcat's "Deploy directory or WAR file located on server": deployPath (optional: else
        the WAR's or folder's name), deployVersion (optional), deployWar (an absolute path)."""
        out = Reply()
        path = (request.get_parameter("deployPath") or "").strip()
        version = (request.get_parameter("deployVersion") or "").strip()
        war = (request.get_parameter("deployWar") or "").strip()
        cn = None
        if printable(path + version + war) != path + version + war:
            # control characters name no file here, and must not reach the log lines
            out(msg("invalidPath", printable(path or war)))
            self._audit(request, "deploy(war=%s)" % printable(war), None, out)
            return "\n".join(out.lines)
        try:
            if path:
                text = path if path.startswith("/") else "/" + path
                cn = parse_context_name(text + ("##" + version if version else ""))
            elif war:
                base = os.path.basename(war[5:] if war.startswith("file:") else war.rstrip("/"))
                cn = parse_context_name(base)
        except DeployError as exc:
            log.info("Manager: %s", exc)
        if not war:
            out(msg("exception", "the WAR or directory path is required (a path on this machine)"))
            self._audit(request, "deploy(war=)", cn, out)
        elif cn is None:
            out(msg("invalidPath", printable(path or war)))
            self._audit(request, "deploy(war=%s)" % war, cn, out)
        else:
            self.deploy_local(out, cn, war, False, request)
        return "\n".join(out.lines)

    def upload(self, request, response):
        """POST /upload: see the module doc. Returns the message line."""
        out = Reply()
        state = {"cn": None, "file": None}
        try:
            self._receive(request, response, out, state)
        finally:
            fh = state["file"]
            if fh is not None:
                fh.close()
                if os.path.lexists(fh.name):
                    os.unlink(fh.name)
            cn = state["cn"]
            if cn is not None:
                self.serviced.discard(cn.name)
            if out.lines:
                # not _audit: with no name it would ask for a path= parameter, and on a multipart
                # request that makes the container parse the body
                addr, peer = request.remote_addr, request.peer_addr
                source = addr if peer in (None, "", addr) else "%s (via %s)" % (addr, peer)
                log.info("Manager: deploy(upload %s) %s by user [%s] from [%s]: %s",
                         printable(state.get("filename")), cn.display if cn is not None else "-",
                         request.remote_user, source, out.first)
        return "\n".join(out.lines)

    def _receive(self, request, response, out, state):
        try:
            boundary = boundary_of(request.content_type or "")
            reader = MultipartReader(boundary, MAX_PART_HEADER, MAX_PARTS)
        except MultipartError as exc:
            out(hmsg("deployUploadFail", exc))
            return
        length = request.content_length
        if length is not None and length > self.max_upload:
            self._too_large(response, out, "the request body of %d bytes is larger than maxUploadSize (%d bytes)"
                            % (length, self.max_upload))
            return
        try:
            self._read_parts(request, response, out, state, reader)
        except (BadRequest, OSError) as exc:
            # the client went away or sent a broken body (chunked framing): nothing is deployed
            log.info("Manager: reading an upload failed: %s", exc)
            if not out.lines:
                out(hmsg("deployUploadFail", exc))

    def _read_parts(self, request, response, out, state, reader):
        stream = request.input
        total = 0
        current = None          # the part being read: "war", or None (ignored)
        war_done = False
        seen_war = False
        while not reader.done:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > self.max_upload:
                self._too_large(response, out, "the request body is larger than maxUploadSize (%d bytes)"
                                % self.max_upload)
                return
            try:
                events = reader.feed(chunk)
            except MultipartError as exc:
                out(hmsg("deployUploadFail", exc))
                return
            for event in events:
                kind = event[0]
                if kind == "part":
                    _, name, filename, _headers = event
                    current = None
                    if name != "deployWar" or seen_war:
                        continue        # other fields carry nothing the upload needs
                    seen_war = True
                    state["filename"] = filename
                    if not self._begin_war(out, state, filename):
                        return
                    current = "war"
                elif kind == "data":
                    if current == "war":
                        state["file"].write(event[1])
                elif kind == "end":
                    if current == "war":
                        state["file"].flush()
                        war_done = True
                    current = None
        try:
            reader.finish()
        except MultipartError as exc:
            out(hmsg("deployUploadFail", exc))
            return
        if not seen_war:
            out(hmsg("deployUploadNoFile"))
            return
        if not war_done:
            out(hmsg("deployUploadFail", "the WAR part did not end"))
            return
        fh, cn = state["file"], state["cn"]
        fh.close()
        try:
            self.deployer().install_war(cn, fh.name, move=True)
        except DeployError as exc:
            log.warning("Manager: deploying the uploaded WAR as %s failed: %s", cn.display, exc)
        self._deploy_result(out, cn)

    def _begin_war(self, out, state, filename):
        """The WAR part starts: check its name and the Host, open the hidden file. False (with the
        FAIL message given) when the upload must stop here."""
        cn, problem = upload_context_name(filename)
        if problem is not None:
            out(problem)
            return False
        name = upload_name(filename)
        app_base = self.host.get_app_base_path()
        if os.path.lexists(os.path.join(app_base, cn.base_name + ".war")):
            out(hmsg("deployUploadWarExists", name))
            return False
        if self.host.find_child(cn.name) is not None:
            if not self.deployer().is_deployed(cn):
                out(hmsg("deployUploadInServerXml", name))
            else:
                out(msg("alreadyContext", cn.display))
            return False
        if cn.name in self.serviced:
            out(msg("inService", cn.display))
            return False
        self.serviced.add(cn.name)
        state["cn"] = cn
        # hidden (scans skip dot names), unique (two uploads never share a file), beside its target
        path = os.path.join(app_base, ".%s.%s.war.upload" % (cn.base_name, secrets.token_hex(4)))
        state["file"] = open(path, "xb")
        return True

    @staticmethod
    def _too_large(response, out, reason):
        response.set_status(413)
        # the rest of the body is read and dropped by the connector in small blocks, never kept
        response.set_header("Connection", "close")
        out(hmsg("deployUploadFail", reason))

    # -- the page --------------------------------------------------------------------------------
    def render(self, request, response, message):
        response.content_type = "text/html;charset=utf-8"
        for name, value in HEADERS:
            response.set_header(name, value)
        response.write(self.page(request, message))

    def page(self, request, message):
        ctx_path = request.context_path or ""
        base = ctx_path + (request.servlet_path or "/html")
        nonce = request.get_attribute(NONCE_NAME)

        def action(command, **params):
            query = "&".join("%s=%s" % (k, quote(v, safe="/")) for k, v in params.items() if v is not None)
            if nonce:
                query += ("&" if query else "") + "%s=%s" % (NONCE_NAME, quote(nonce))
            return _e(base + "/" + command + ("?" + query if query else ""))

        kind = "fail" if message.startswith("FAIL") else "ok"
        parts = ["<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>pycat Web Application Manager</title>",
                 "<style>%s</style></head><body>" % CSS,
                 "<h1>pycat Web Application Manager</h1>",
                 '<nav><a href="%s/list">List Applications</a><a href="%s/status">Server Status</a>'
                 '<a href="%s/cluster">Cluster</a><a href="%s/">Manager Help</a></nav>'
                 % (_e(base), _e(ctx_path), _e(ctx_path), _e(ctx_path)),
                 # only after an action (Tomcat shows "OK" on the plain list; the browser tests
                 # want no message there)
                 '<h2>Message:</h2><div id="message" class="%s">%s</div>' % (kind, _e(message)) if message else ""]
        parts.append(self._apps_table(action))
        parts.append(self._deploy_forms(action))
        parts.append(self._server_info())
        parts.append("</body></html>\n")
        return "\n".join(parts)

    def _apps_table(self, action):
        rows = ['<h2>Applications</h2>', '<table id="apps"><thead><tr><th>Path</th><th>Version</th>'
                '<th>Display Name</th><th>Running</th><th>Sessions</th><th>Commands</th></tr></thead><tbody>']
        contexts = sorted(self.host.find_children(),
                          key=lambda c: (c.path or "", version_key(getattr(c, "webapp_version", "") or "")))
        for ctx in contexts:
            path = ctx.path or "/"
            version = getattr(ctx, "webapp_version", "") or ""
            running = bool(ctx.state.available)
            state = "running" if running else "stopped"
            sessions = _session_count(ctx) if running else 0
            web = getattr(ctx, "web_xml", None)
            display = getattr(web, "display_name", None) or ""
            timeout = getattr(ctx, "session_timeout", 30) or 30
            link = '<a href="%s">%s</a>' % (_e(quote(path if path.endswith("/") else path + "/", safe="/")), _e(path)) \
                if running else _e(path)
            forms = []
            for command in ACTIONS:
                url = action(command, path=path, version=version or None)
                extra = ""
                if command == "expire":
                    extra = (' <label>with idle &ge; <input name="idle" size="5" value="%d"> minutes</label>'
                             % timeout)
                forms.append('<form method="post" class="action-%s" action="%s"><button type="submit">%s</button>%s'
                             '</form>' % (command, url, LABELS[command], extra))
            rows.append('<tr class="app %s" data-path="%s" data-version="%s"><td class="path">%s</td>'
                        '<td class="version">%s</td><td class="display-name">%s</td><td class="state">%s</td>'
                        '<td class="sessions">%d</td><td class="commands">%s</td></tr>'
                        % (state, _e(path), _e(version), link, _e(version or "None specified"), _e(display),
                           state, sessions, "".join(forms)))
        rows.append("</tbody></table>")
        return "\n".join(rows)

    def _deploy_forms(self, action):
        limit = self.max_upload
        return "\n".join([
            "<h2>Deploy</h2>",
            "<h3>Deploy directory or WAR file located on server</h3>",
            '<form id="deploy" class="deploy" method="post" action="%s">' % action("deploy"),
            '<label>Context Path: <input name="deployPath" placeholder="/shop"></label>',
            '<label>Version (for parallel deployment): <input name="deployVersion" size="8"></label>',
            '<label>WAR or Directory path: <input name="deployWar" size="40" placeholder="/srv/builds/shop.war"></label>',
            '<button id="deploy-submit" type="submit">Deploy</button></form>',
            "<h3>WAR file to deploy</h3>",
            '<form id="upload" class="deploy" method="post" enctype="multipart/form-data" action="%s">'
            % action("upload"),
            '<label>Select WAR file to upload <input type="file" name="deployWar" accept=".war"></label>',
            '<button id="upload-submit" type="submit">Deploy</button>',
            "<small>at most %s (maxUploadSize); the file's name gives the context path "
            "(shop##2.war: /shop, version 2)</small></form>" % _size(limit),
        ])

    def _server_info(self):
        uname = platform.uname()
        fields = [("Tomcat Version", pycat.SERVER_INFO),
                  ("JVM Version", "%s %s" % (platform.python_implementation(), platform.python_version())),
                  ("JVM Vendor", _vendor()), ("OS Name", uname.system), ("OS Version", uname.release),
                  ("OS Architecture", uname.machine), ("Hostname", socket.gethostname()),
                  ("Process ID", os.getpid())]
        return ('<h2>Server Information</h2><table id="serverinfo"><tr>%s</tr><tr>%s</tr></table>'
                % ("".join("<th>%s</th>" % _e(k) for k, _ in fields),
                   "".join('<td data-field="%s">%s</td>' % (_e(k), _e(v)) for k, v in fields)))


def _size(n):
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return "%d MiB" % (n // (1024 * 1024))
    return "%d bytes" % n

