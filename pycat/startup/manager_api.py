"""The local deploy channel behind ``pycat deploy`` / ``undeploy`` / ``list`` (a tiny manager).

Wire format: the client connects to 127.0.0.1:<port>, sends ONE line of JSON and reads ONE
line of JSON back, then both close::

    -> {"token": "<hex>", "cmd": "list"}
    <- {"ok": true, "apps": [{"host": "localhost", "name": "/app##2", "path": "/app",
                              "version": "2", "state": "STARTED", "docBase": "...", "sessions": 0}]}
    -> {"token": "<hex>", "cmd": "deploy", "war": "/abs/app.war", "name": "app##2", "host": "localhost"}
    <- {"ok": true, "message": "deployed /app##2"}      (or {"ok": false, "error": "<reason>"})
    -> {"token": "<hex>", "cmd": "undeploy", "name": "/app##2", "host": "localhost"}

Safety: the listener binds 127.0.0.1 only, on a port chosen by the OS; the port and a random
256-bit token are written to ``$CATALINA_BASE/work/pycat-manager.json`` with mode 0600, so only
the account that owns the node (the one that may write its appBase anyway) can use it. A
request without the right token (compared in constant time) is refused; lines are capped at
64 KiB. ``deploy`` copies the named WAR into appBase (``<name>.war``) and deploys it at once
(a redeploy if the name is deployed); ``undeploy`` stops the app and deletes its WAR and
folder from appBase, as Tomcat's manager does. Set the Host attribute ``deployApi="false"`` on
every Host to turn the listener off.

One listener per process (it is started with the first Host whose HostConfig starts and
stopped with the last one).
"""
import hmac
import json
import logging
import os
import secrets
import shutil
import socket

import gevent

from pycat.errors import DeployError
from pycat.fileutil import atomic_write
from pycat.lifecycle import Lifecycle
from pycat.netutil import listen_tcp
from pycat.webapp.war import ContextName

log = logging.getLogger(__name__)

FILE_NAME = "pycat-manager.json"
MAX_LINE = 64 * 1024

_endpoint = None
_hosts = []


def host_started(host):
    global _endpoint
    _hosts.append(host)
    if _endpoint is None and getattr(host, "deploy_api", True):
        endpoint = ManagerEndpoint(host.catalina_base)
        try:
            endpoint.start()
        except Exception:
            log.exception("The deploy channel could not start; pycat deploy/undeploy/list will not work")
            return
        _endpoint = endpoint


def host_stopped(host):
    global _endpoint
    if host in _hosts:
        _hosts.remove(host)
    if not _hosts and _endpoint is not None:
        endpoint, _endpoint = _endpoint, None
        endpoint.stop()


def _find_host(name):
    for host in _hosts:
        if name is None or host.name == name or name in getattr(host, "aliases", ()):
            return host
    raise DeployError("no Host named %r" % name)


class ManagerEndpoint(Lifecycle):
    def __init__(self, catalina_base):
        super().__init__()
        self.name = "deploy-channel"
        self.catalina_base = catalina_base
        self.file = os.path.join(catalina_base, "work", FILE_NAME)
        self.token = secrets.token_hex(32)
        self.sock = None
        self.port = None

    def _start(self):
        sock = listen_tcp(("127.0.0.1", 0), 16)
        self.sock, self.port = sock, sock.getsockname()[1]
        os.makedirs(os.path.dirname(self.file), exist_ok=True)
        with atomic_write(self.file, "w", perms=0o600) as fh:
            json.dump({"port": self.port, "token": self.token, "pid": os.getpid()}, fh)
        self.spawn(self._accept_loop)
        log.info("Deploy channel listening on 127.0.0.1:%d (token in %s)", self.port, self.file)

    def _stop(self):
        if self.sock is not None:
            self.sock.close()
        try:
            with open(self.file) as fh:
                if json.load(fh).get("token") == self.token:
                    os.unlink(self.file)
        except (OSError, ValueError):
            pass

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.spawn(self._serve, conn)

    def _serve(self, conn):
        try:
            with conn:
                data = b""
                # only the read is timed: a deployment, once started, is never cut short
                with gevent.Timeout(30):
                    while not data.endswith(b"\n") and len(data) <= MAX_LINE:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                reply = self.handle_line(data)
                conn.sendall(json.dumps(reply).encode("utf-8") + b"\n")
        except (OSError, gevent.Timeout):
            log.debug("deploy channel connection ended early", exc_info=True)

    def handle_line(self, data):
        if len(data) > MAX_LINE:
            return {"ok": False, "error": "request too long"}
        try:
            request = json.loads(data.decode("utf-8"))
            token = request.get("token", "")
        except (ValueError, AttributeError):
            return {"ok": False, "error": "malformed request"}
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.token.encode()):
            log.warning("Deploy channel: request with a wrong token refused")
            return {"ok": False, "error": "bad token"}
        cmd = request.get("cmd")
        try:
            if cmd == "list":
                return {"ok": True, "apps": list_apps()}
            if cmd == "deploy":
                return {"ok": True, "message": deploy(request.get("war"), request.get("name"), request.get("host"))}
            if cmd == "undeploy":
                return {"ok": True, "message": undeploy(request.get("name"), request.get("host"))}
            return {"ok": False, "error": "unknown command %r" % (cmd,)}
        except DeployError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("Deploy channel: %s failed", cmd)
            return {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}


def _config(host):
    from pycat.startup.deploy_support import deployers
    config = deployers.get(host)
    if config is None:
        raise DeployError("Host %s has no deployer" % host.name)
    return config


def list_apps():
    out = []
    for host in _hosts:
        for ctx in host.find_children():
            manager = getattr(ctx, "manager", None)
            try:
                sessions = len(manager.find_sessions()) if manager is not None else 0
            except Exception:
                sessions = None
            out.append({"host": host.name, "name": ctx.name, "path": ctx.path or "/",
                        "version": getattr(ctx, "webapp_version", "") or "", "state": ctx.state.value,
                        "docBase": getattr(ctx, "doc_base_path", None) or ctx.doc_base, "sessions": sessions})
    return out


def _cname(name):
    if not name:
        raise DeployError("a context name is required")
    if name.startswith("/") or name == "":
        path, _, version = name.partition("##")
        return ContextName(path, version)
    return ContextName.from_base_name(name)


def deploy(war, name=None, host_name=None):
    if not war or not os.path.isabs(war) or not os.path.isfile(war):
        raise DeployError("war must be the absolute path of an existing .war file, not %r" % (war,))
    host = _find_host(host_name)
    cname = _cname(name or os.path.basename(war))
    target = os.path.join(host.get_app_base_path(), cname.base_name + ".war")
    config = _config(host)
    with config.lock:
        # the temp name is hidden, so the deploy scan never picks up a half-copied WAR
        with open(war, "rb") as src, atomic_write(target, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        ctx = config.deploy_now(cname)
    if ctx is None:
        raise DeployError("deploying %s failed (the reason is in the server log); "
                          "any previous version keeps serving" % cname.display)
    return "deployed %s" % cname.display


def undeploy(name, host_name=None):
    host = _find_host(host_name)
    config = _config(host)
    cname = _cname(name)
    with config.lock:
        app = config.apps.get(cname.name)
        if app is None:
            raise DeployError("no application %s deployed by pycat on %s" % (cname.display, host.name))
        config.undeploy(app, remove_files=True)
        app_base = host.get_app_base_path()
        for path in (app.war, os.path.join(app_base, cname.base_name + ".war")):
            if path and os.path.dirname(os.path.abspath(path)) == app_base and os.path.isfile(path):
                os.unlink(path)
        folder = os.path.join(app_base, cname.base_name)
        if os.path.isdir(folder):
            shutil.rmtree(folder, ignore_errors=True)
    return "undeployed %s" % cname.display


# -- client side (the CLI) ------------------------------------------------------------------------
def call(catalina_base, request, timeout=60.0):
    """Send one request to the node whose CATALINA_BASE is given; returns the reply dict."""
    path = os.path.join(catalina_base, "work", FILE_NAME)
    try:
        with open(path) as fh:
            info = json.load(fh)
    except (OSError, ValueError) as exc:
        raise DeployError("no running pycat found for %s (cannot read %s: %s)" % (catalina_base, path, exc)) from None
    request = dict(request, token=info["token"])
    try:
        with socket.create_connection(("127.0.0.1", info["port"]), timeout=timeout) as sock:
            sock.sendall(json.dumps(request).encode("utf-8") + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise DeployError("cannot reach the pycat deploy channel on port %s: %s" % (info.get("port"), exc)) from None
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError:
        raise DeployError("unreadable reply from the deploy channel: %r" % data[:200]) from None
