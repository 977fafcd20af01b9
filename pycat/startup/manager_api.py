"""The local deploy channel behind ``pycat deploy`` / ``undeploy`` / ``list`` (a tiny manager).

Wire format: the client connects to 127.0.0.1:<port>, sends ONE line -- the token, a space, a
JSON object -- and reads ONE line of JSON back, then both close::

    -> <token> {"cmd": "list"}
    <- {"ok": true, "apps": [{"host": "localhost", "name": "/app##2", "path": "/app",
                              "version": "2", "state": "STARTED", "docBase": "...", "sessions": 0}]}
    -> <token> {"cmd": "deploy", "war": "/abs/app.war", "name": "app##2", "host": "localhost"}
    <- {"ok": true, "message": "deployed /app##2"}      (or {"ok": false, "error": "<reason>"})
    -> <token> {"cmd": "undeploy", "name": "/app##2", "host": "localhost"}
    -> <token> {"cmd": "farm-list", "host": null}
    <- {"ok": true, "wars": [{"war": "app.war", "path": "/app", "version": 1718000000000, "sha256": "...",
                              "size": 1234, "origin": "tcp://...", "nodes": {"this node (tcp://...)": "running",
                              "tcp://127.0.0.1:4001": "running"}}]}
    -> <token> {"cmd": "farm-deploy", "war": "/abs/app.war", "name": "app", "host": null}
    -> <token> {"cmd": "farm-undeploy", "name": "/app", "host": null}
    -> <token> {"cmd": "cluster-status"}       (or "server-status")
    <- {"ok": true, "status": {...}}     the dict /manager/cluster/json (/manager/status/json) answers,
                                         built by cluster_status() (server_status()) below
    -> <token> {"cmd": "cluster-turnover", "enabled": true}     this node's JvmRouteBinderValves
    <- {"ok": true, "message": "turnover mode on: 1 JvmRouteBinderValve(s) enabled on this node"}

Safety: the listener binds 127.0.0.1 only, on a port chosen by the OS; the port and a random
256-bit token are written to ``$CATALINA_BASE/work/pycat-manager.json`` with mode 0600, so only
the account that owns the node (the one that may write its appBase anyway) can use it. The token
comes first on the line so that it is checked (in constant time) before anything else is read
or parsed: a peer without it gets "bad token" and never reaches the JSON parser (a deeply nested
body once raised a RecursionError there). Lines are capped at 64 KiB. Warnings about refused
requests are logged at most once a minute per source address and kind, with the number left
out. ``deploy`` copies the named WAR into appBase (``<name>.war``) and deploys it at once (a
redeploy if the name is deployed); if that fails, appBase is left as it was (the new WAR is
removed, a WAR it replaced is put back) and any previous version keeps serving. ``undeploy``
stops the app, deletes its WAR and folder from appBase and its descriptor from the config base,
as Tomcat's manager does (never a docBase outside appBase), and its work folder (sessions).
Names are checked by war.parse_context_name (``/..``, ``a/../b``, ``app##../x`` are refused).
The ``farm-*`` commands act through the FarmWarDeployer of the Host's cluster (found by
deploy_support.farm_deployer): ``farm-deploy`` deploys the WAR here and sends it to every member,
``farm-undeploy`` undeploys it here and everywhere, ``farm-list`` shows what the farm holds and
which nodes run it (the members are asked).
Set the Host attribute ``deployApi="false"`` on every Host to turn the listener off.

Ownership: the Server holds its ``DeployChannel`` (``server.deploy_channel``, made by the first
HostConfig that starts under it); the channel knows the started Hosts and reaches each one's
deployer through ``host.deployer`` (its HostConfig). Its listener, a ManagerEndpoint, is started
with the first Host whose HostConfig starts with ``deployApi`` on and stopped with the last Host.
Nothing here is module state: two Servers in one process have two channels.
"""
import collections
import gc
import hmac
import json
import logging
import os
import secrets
import socket
import time

import gevent
import greenlet

import pycat
from pycat.errors import DeployError
from pycat.fileutil import atomic_write
from pycat.lifecycle import Lifecycle
from pycat.netutil import listen_tcp
from pycat.startup import deploy_support as support
from pycat.webapp.war import parse_context_name

log = logging.getLogger(__name__)

FILE_NAME = "pycat-manager.json"
MAX_LINE = 64 * 1024
TOKEN_CHARS = 64              # secrets.token_hex(32)
WARN_INTERVAL = 60.0          # seconds between two warnings of one kind about one source address

class WarningLimiter:
    """At most one warning per (source, kind) per ``interval`` seconds; the next one logged says
    how many were left out. Bounded: the oldest keys go first when there are too many."""

    MAX_KEYS = 1024

    def __init__(self, logger, interval=WARN_INTERVAL):
        self.log, self.interval = logger, interval
        self.seen = {}            # (source, kind) -> [monotonic time of the last warning, left out since]

    def warn(self, source, kind, message, *args):
        now = time.monotonic()
        key = (source, kind)
        entry = self.seen.get(key)
        if entry is not None and now - entry[0] < self.interval:
            entry[1] += 1
            return False
        left_out = entry[1] if entry is not None else 0
        self.seen.pop(key, None)
        self.seen[key] = [now, 0]
        if len(self.seen) > self.MAX_KEYS:
            del self.seen[next(iter(self.seen))]
        if left_out:
            message += " (%d more from %s since the last such warning)" % (left_out, source)
        self.log.warning(message, *args)
        return True


class DeployChannel:
    """What ``pycat deploy`` / ``undeploy`` / ``list`` act on for one Server: its started Hosts
    (each reached through ``host.deployer``) and the endpoint that listens for the commands."""

    def __init__(self):
        self.hosts = []
        self.endpoint = None

    @classmethod
    def of(cls, server):
        """The Server's channel, made on first use."""
        channel = getattr(server, "deploy_channel", None)
        if channel is None:
            channel = server.deploy_channel = cls()
        return channel

    # -- the Hosts (called by HostConfig on the Host's start and stop events) ----------------------
    def add_host(self, host):
        if host not in self.hosts:
            self.hosts.append(host)
        if self.endpoint is None and getattr(host, "deploy_api", True):
            endpoint = ManagerEndpoint(self, host.catalina_base)
            try:
                endpoint.start()
            except Exception:
                log.exception("The deploy channel could not start; pycat deploy/undeploy/list will not work")
                return
            self.endpoint = endpoint

    def remove_host(self, host):
        if host in self.hosts:
            self.hosts.remove(host)
        if not self.hosts and self.endpoint is not None:
            endpoint, self.endpoint = self.endpoint, None
            endpoint.stop()

    def find_host(self, name):
        for host in self.hosts:
            if name is None or host.name == name or name in getattr(host, "aliases", ()):
                return host
        raise DeployError("no Host named %r" % name)

    def server(self):
        """The Server whose Hosts this channel serves."""
        for host in self.hosts:
            server = host.get_server()
            if server is not None:
                return server
        raise DeployError("no started Host")

    @staticmethod
    def deployer(host):
        config = getattr(host, "deployer", None)
        if config is None:
            raise DeployError("Host %s has no deployer" % host.name)
        return config

    # -- the commands ----------------------------------------------------------------------------
    def list_apps(self):
        out = []
        for host in self.hosts:
            for ctx in host.find_children():
                manager = getattr(ctx, "manager", None)
                try:
                    sessions = manager.active_sessions if manager is not None else 0
                except Exception:
                    sessions = None
                out.append({"host": host.name, "name": ctx.name, "path": ctx.path or "/",
                            "version": getattr(ctx, "webapp_version", "") or "", "state": ctx.state.value,
                            "docBase": getattr(ctx, "doc_base_path", None) or ctx.doc_base,
                            "sessions": sessions})
        return out

    def deploy(self, war, name=None, host_name=None):
        if not isinstance(war, str) or not os.path.isabs(war) or not os.path.isfile(war):
            raise DeployError("war must be the absolute path of an existing .war file, not %r" % (war,))
        host = self.find_host(host_name)
        cname = _cname(name or os.path.basename(war))
        self.deployer(host).install_war(cname, war)
        return "deployed %s" % cname.display

    def undeploy(self, name, host_name=None):
        host = self.find_host(host_name)
        cname = _cname(name)
        self.deployer(host).remove_app(cname)
        return "undeployed %s" % cname.display


    # -- the farm (pycat farm list / deploy / undeploy) --------------------------------------------
    def farm(self, host_name=None):
        host = self.find_host(host_name)
        farm = support.farm_deployer(host)
        if farm is None:
            raise DeployError("Host %s has no running FarmWarDeployer (a <Deployer> in its <Cluster>)" % host.name)
        return farm

    def farm_list(self, host_name=None):
        return self.farm(host_name).farm_list()

    def farm_deploy(self, war, name=None, host_name=None):
        if not isinstance(war, str) or not os.path.isabs(war) or not os.path.isfile(war):
            raise DeployError("war must be the absolute path of an existing .war file, not %r" % (war,))
        cname = _cname(name or os.path.basename(war))
        deployed, sent, members = self.farm(host_name).publish(war, cname.base_name + ".war")
        if not deployed:
            raise DeployError("%s was not deployed on this node (the reason is in its log; any previous version "
                              "keeps serving); sent to %d of %d member(s), which log their own result"
                              % (cname.display, sent, members))
        return "deployed %s here and sent it to %d of %d member(s)" % (cname.display, sent, members)

    def farm_undeploy(self, name, host_name=None):
        cname = _cname(name)
        told = self.farm(host_name).unpublish(cname.base_name + ".war")
        return "undeployed %s here and told %d member(s)" % (cname.display, told)


def _cname(name):
    try:
        return parse_context_name(name)
    except DeployError as exc:
        log.warning("Deploy channel: %s", exc)
        raise


class ManagerEndpoint(Lifecycle):
    """The 127.0.0.1 listener of a DeployChannel (the wire format is at the top of this file)."""

    def __init__(self, channel, catalina_base):
        super().__init__()
        self.name = "deploy-channel"
        self.channel = channel
        self.catalina_base = catalina_base
        self.file = os.path.join(catalina_base, "work", FILE_NAME)
        self.token = secrets.token_hex(32)
        self.sock = None
        self.port = None
        self.warnings = WarningLimiter(log)

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
                conn, addr = self.sock.accept()
            except OSError:
                return
            self.spawn(self._serve, conn, addr[0])

    def _serve(self, conn, source="?"):
        try:
            with conn:
                data = b""
                # only the reads are timed: a deployment, once started, is never cut short
                with gevent.Timeout(30):
                    # the token first: a peer without it gets no more than its first line's start read
                    data = self._read(conn, data, TOKEN_CHARS + 1)
                    if not self.token_matches(data):
                        self.warnings.warn(source, "token", "Deploy channel: request from %s with a "
                                           "wrong or missing token refused", source)
                        reply = {"ok": False, "error": "bad token"}
                    else:
                        data = self._read(conn, data, MAX_LINE + 1)
                        reply = None
                if reply is None:
                    reply = self.handle_line(data)
                conn.sendall(json.dumps(reply).encode("utf-8") + b"\n")
        except (OSError, gevent.Timeout):
            log.debug("deploy channel connection ended early", exc_info=True)

    @staticmethod
    def _read(conn, data, limit):
        """Read until a newline or ``limit`` bytes (or the peer's end of sending)."""
        while b"\n" not in data and len(data) < limit:
            chunk = conn.recv(min(65536, limit - len(data)))
            if not chunk:
                break
            data += chunk
        return data

    def token_matches(self, data):
        given = data[:TOKEN_CHARS]
        return hmac.compare_digest(given.ljust(TOKEN_CHARS, b"\0"), self.token.encode("ascii")) \
            and data[TOKEN_CHARS:TOKEN_CHARS + 1] == b" "

    def handle_line(self, data):
        """One raw request line (token, space, JSON): the reply dict. The token is checked
        before the rest is even looked at."""
        if not self.token_matches(data):
            return {"ok": False, "error": "bad token"}
        if len(data) > MAX_LINE:
            return {"ok": False, "error": "request too long"}
        try:
            request = json.loads(data[TOKEN_CHARS + 1:].decode("utf-8"))
            cmd = request.get("cmd")
        except (ValueError, AttributeError, RecursionError):
            return {"ok": False, "error": "malformed request"}
        try:
            channel = self.channel
            if cmd == "list":
                return {"ok": True, "apps": channel.list_apps()}
            if cmd == "deploy":
                return {"ok": True, "message": channel.deploy(request.get("war"), request.get("name"),
                                                              request.get("host"))}
            if cmd == "undeploy":
                return {"ok": True, "message": channel.undeploy(request.get("name"), request.get("host"))}
            if cmd == "farm-list":
                return {"ok": True, "wars": channel.farm_list(request.get("host"))}
            if cmd == "farm-deploy":
                return {"ok": True, "message": channel.farm_deploy(request.get("war"), request.get("name"),
                                                                   request.get("host"))}
            if cmd == "farm-undeploy":
                return {"ok": True, "message": channel.farm_undeploy(request.get("name"), request.get("host"))}
            if cmd == "cluster-status":
                return {"ok": True, "status": cluster_status(channel.server())}
            if cmd == "server-status":
                return {"ok": True, "status": server_status(channel.server())}
            if cmd == "cluster-turnover":
                enabled = request.get("enabled")
                if not isinstance(enabled, bool):
                    return {"ok": False, "error": "enabled must be true or false"}
                count = set_turnover(channel.server(), enabled)
                return {"ok": True, "message": "turnover mode %s: %d JvmRouteBinderValve(s) %s on this node"
                        % ("on" if enabled else "off", count, "enabled" if enabled else "disabled")}
            return {"ok": False, "error": "unknown command %r" % (cmd,)}
        except DeployError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("Deploy channel: %s failed", cmd)
            return {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}


# -- status: /manager/status/json, /manager/cluster/json and `pycat cluster status` ------------------
# One builder each, shared by the manager app (which imports them) and the deploy channel's
# "server-status" / "cluster-status" commands, so the page and the command line show the same dict.
_MODULE_LOADED = time.time()


def _process_start():
    """The process's start time (wall clock), from /proc where there is one."""
    try:
        with open("/proc/self/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            up = float(fh.read().split()[0])
        return time.time() - up + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _MODULE_LOADED


def _rss_bytes():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024      # the peak, on Linux in KiB
    except (ImportError, OSError):
        return None


_greenlets = [0.0, 0]          # (when counted, how many): a walk of the heap costs, the page polls


def _greenlet_count(max_age=30.0):
    """Live greenlets, counted by walking every object the collector tracks (gevent keeps no
    registry): on a node holding many sessions that takes a while, so a count is reused for
    ``max_age`` seconds however often the status page polls."""
    now = time.monotonic()
    if now - _greenlets[0] >= max_age or not _greenlets[1]:
        _greenlets[:] = [now, sum(1 for obj in gc.get_objects() if isinstance(obj, greenlet.greenlet))]
    return _greenlets[1]


def _stats(owner):
    stats = getattr(owner, "request_stats", None)
    if stats is None:
        return {"requests": 0, "errors": 0, "bytes_sent": 0, "processing_ms": 0.0, "avg_ms": 0.0, "max_ms": 0.0}
    n = stats.request_count
    return {"requests": n, "errors": stats.error_count, "bytes_sent": stats.bytes_sent,
            "processing_ms": round(stats.processing_time * 1000, 3),
            "avg_ms": round(stats.processing_time * 1000 / n, 3) if n else 0.0,
            "max_ms": round(stats.max_time * 1000, 3)}


def _class_name(obj):
    return "%s.%s" % (type(obj).__module__, type(obj).__qualname__)


def _sessions(manager):
    if manager is None:
        return None
    try:
        active = manager.active_sessions
    except Exception:
        active = None
    return {"active": active, "created": getattr(manager, "session_counter", 0),
            "expired": getattr(manager, "expired_sessions", 0), "rejected": getattr(manager, "rejected_sessions", 0),
            "max_active": getattr(manager, "max_active", 0)}


def _hosts(server):
    for service in getattr(server, "services", ()):
        engine = service.container
        if engine is None:
            continue
        for host in engine.find_children():
            yield service, engine, host


def server_status(server):
    """Server and process figures, then per connector and per app: what the container counts."""
    now = time.time()
    started = _process_start()
    out = {"time": now, "server_info": pycat.SERVER_INFO, "pid": os.getpid(),
           "started": started, "uptime_seconds": round(now - started, 3), "rss_bytes": _rss_bytes(),
           "greenlets": _greenlet_count(), "connectors": [], "apps": []}
    for service in getattr(server, "services", ()):
        for connector in service.connectors:
            pool, workers = getattr(connector, "pool", None), getattr(connector, "workers", None)
            row = {"service": service.name, "protocol": connector.protocol, "port": connector.bound_port or connector.port,
                   "state": connector.state.value,
                   "open_connections": len(pool) if pool is not None else None,
                   "max_connections": connector.connection_limit() if pool is not None else None}
            if workers is not None and hasattr(workers, "counter"):
                limit = connector.worker_count()
                row.update(busy_workers=max(0, limit - workers.counter), max_workers=limit)
            row.update(_stats(connector))
            out["connectors"].append(row)
    for service, engine, host in _hosts(server):
        for ctx in host.find_children():
            row = {"host": host.name, "name": ctx.name, "path": ctx.path or "/",
                   "version": getattr(ctx, "webapp_version", "") or "", "state": ctx.state.value,
                   "distributable": bool(getattr(ctx, "distributable", False)),
                   "sessions": _sessions(getattr(ctx, "manager", None))}
            row.update(_stats(ctx))
            out["apps"].append(row)
    return out


def _route(owner):
    """The jvmRoute of the Engine holding (or above) a cluster's container, or None."""
    while owner is not None:
        route = getattr(owner, "jvm_route", None)
        if route:
            return route
        owner = getattr(owner, "parent", None)
    return None


def _member(member, local=False, route=None):
    if member is None:
        return None
    alive = member.alive_time
    if local and getattr(member, "service_start_time", None) is not None:
        alive = int(time.monotonic() * 1000) - member.service_start_time
    domain = member.domain
    return {"name": member.name, "host": member.hostname, "port": member.port,
            "domain": domain.decode("utf-8", "replace") if isinstance(domain, bytes) else str(domain or ""),
            "id": member.unique_id.hex(), "alive_ms": alive, "local": local,
            **({"route": route} if local else {})}


def _manager_row(name, manager):
    ctx = getattr(manager, "context", None)
    row = {"name": name, "context": getattr(ctx, "name", None), "class": _class_name(manager),
           "sessions": _sessions(manager),
           "counters": {k[len("counter_"):]: v for k, v in sorted(vars(manager).items())
                        if k.startswith("counter_") and isinstance(v, (int, float))}}
    roles = getattr(manager, "roles", None)
    if callable(roles):
        try:
            row["roles"] = dict(collections.Counter(roles().values()))
        except Exception as exc:
            row["roles"] = {"error": "%s: %s" % (type(exc).__name__, exc)}
    if hasattr(manager, "state_transfer_seconds"):
        row["state_transfer_seconds"] = manager.state_transfer_seconds
    # ClusterManagerBase.request_completed: from a request's end to its message written (async)
    # or acknowledged (sync), over the requests that sent one
    count = getattr(manager, "replication_count", 0) or 0
    row["replications"] = count
    row["avg_replication_ms"] = round(manager.replication_seconds * 1000 / count, 3) if count else 0.0
    return row


def _binder_valves(cluster):
    from pycat.ha.jvm_route_binder import JvmRouteBinderValve
    return [v for v in getattr(cluster, "valves", ()) if isinstance(v, JvmRouteBinderValve)]


def _clusters(server):
    """Each cluster of the server once, with the container (Engine or Host) that holds it."""
    seen = set()
    for service, engine, host in _hosts(server):
        for owner in (engine, host):
            cluster = getattr(owner, "cluster", None)
            if cluster is None or id(cluster) in seen:
                continue
            seen.add(id(cluster))
            yield owner, cluster


def _turnover(clusters_valves):
    """True when every JvmRouteBinderValve given is enabled, False when one is not, None with none."""
    valves = [v for vs in clusters_valves for v in vs]
    return all(bool(v.enabled) for v in valves) if valves else None


def turnover_state(server):
    """cluster_status()'s top-level ``turnover`` without the rest of it."""
    return _turnover([_binder_valves(cluster) for _, cluster in _clusters(server)])


def set_turnover(server, enabled):
    """Cluster-howto's "turnover mode": enable (or disable) the JvmRouteBinderValve of every
    cluster on this node, so that it takes over the sessions of a node about to be stopped (the
    balancer sends their users here, and this valve gives the sessions this node's route).
    Returns the number of valves set; DeployError when this node has none."""
    valves = [v for _, cluster in _clusters(server) for v in _binder_valves(cluster)]
    if not valves:
        raise DeployError("this node has no cluster with a JvmRouteBinderValve")
    for valve in valves:
        valve.enabled = bool(enabled)
    log.info("Turnover mode %s: %d JvmRouteBinderValve(s) of this node %s", "on" if enabled else "off",
             len(valves), "enabled" if enabled else "disabled")
    return len(valves)


def cluster_status(server, farm_members=True):
    """This node's view of each cluster (one per Engine or Host that has one): members, the
    distributable apps' managers (with their average replication time), the farm, the cluster
    valves, and ``turnover``: whether the cluster's JvmRouteBinderValve is enabled (None without
    one); the top-level ``turnover`` is the same over every cluster of the node."""
    clusters, binders = [], []
    for owner, cluster in _clusters(server):
        channel = cluster.channel
        members = list(channel.get_members()) if channel is not None else []
        row = {"name": cluster.get_cluster_name(), "class": _class_name(cluster),
               "container": getattr(owner, "name", None), "state": cluster.state.value,
               "local_member": _member(cluster.get_local_member(), local=True, route=_route(owner)),
               "members": [_member(m) for m in members],
               "managers": [_manager_row(name, m) for name, m in sorted(cluster.managers.items())],
               "valves": [], "farm": None}
        for valve in cluster.valves:
            v = {"class": _class_name(valve)}
            if hasattr(valve, "enabled"):
                v["enabled"] = bool(valve.enabled)
            row["valves"].append(v)
        binders.append(_binder_valves(cluster))
        row["turnover"] = _turnover(binders[-1:])
        farm = getattr(cluster, "deployer", None)
        if farm is not None and getattr(farm, "state", None) is not None and farm.state.available:
            try:
                wars = farm.farm_list() if farm_members else [
                    {"war": e.war, "version": e.stamp, "size": e.size, "running": e.running, "removed": e.removed}
                    for e in farm.inventory()]
                row["farm"] = {"class": _class_name(farm), "wars": wars}
            except Exception as exc:
                row["farm"] = {"class": _class_name(farm), "error": "%s: %s" % (type(exc).__name__, exc)}
        clusters.append(row)
    return {"time": time.time(), "pid": os.getpid(), "turnover": _turnover(binders), "clusters": clusters}


# -- client side (the CLI) ------------------------------------------------------------------------
def call(catalina_base, request, timeout=60.0):
    """Send one request to the node whose CATALINA_BASE is given; returns the reply dict."""
    path = os.path.join(catalina_base, "work", FILE_NAME)
    try:
        with open(path) as fh:
            info = json.load(fh)
    except (OSError, ValueError) as exc:
        raise DeployError("no running pycat found for %s (cannot read %s: %s)" % (catalina_base, path, exc)) from None
    line = info["token"].encode("ascii") + b" " + json.dumps(request).encode("utf-8") + b"\n"
    try:
        with socket.create_connection(("127.0.0.1", info["port"]), timeout=timeout) as sock:
            sock.sendall(line)
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
