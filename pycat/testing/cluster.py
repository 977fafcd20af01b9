"""N test nodes in one cluster of their own.

    cluster = Cluster(tmp_path / "cluster", size=2, manager="delta", apps=["shop.war"])
    cluster.start()                  # node1, then node2; returns when every node sees every other
    owner = cluster.node_for(user)   # the node named by the session id's jvmRoute
    cluster.kill(owner)
    cluster.restart(owner)           # back, seen by the others, its sessions transferred

Each node (``node1``..``nodeN``, also its jvmRoute) gets the cluster how-to's <Cluster> in its
Engine (or Host with ``in_host=True``): the chosen <Manager> (``manager``: "delta" for
DeltaManager, "backup" for BackupManager, None for none (the cluster's default), or a class name;
``manager_attrs`` adds or overrides attributes), ``channelSendOptions`` = ``send_options``,
membership by multicast on a group and port of its own (``ports.mcast_group``) or ``membership=
"static"`` (a StaticMembershipService listing every node; no multicast at all), a NioReceiver
on a held port (``autoBind="1"``: a restarted node comes back on the same port), the
ReplicationValve, the JvmRouteBinderValve and the ClusterSessionListener (``valves``), and
``interceptors`` / ``extra`` (XML added to the Channel / the Cluster, e.g. a Deployer).
``cluster_xml`` replaces that whole <Cluster>: a ``str.format`` template whose fields
``{send_options}``, ``{manager}``, ``{membership}``, ``{interceptors}``, ``{valves}``, ``{extra}``
and ``{channel_attrs}`` are filled in (``${{cluster.port}}`` is the node's receiver port). A
``server_xml`` that already has a <Cluster> is used as it is, with its multicast group and port
replaced by the cluster's own.

Waits ask each node's deploy channel (``cluster-status``) rather than reading logs, so they hold
at any log level: node A sees node B when B's current member id (B's own view of itself) is in
A's member list -- a restarted B has a new id, so a stale entry does not count.
"""
import hashlib
import os
import time

from pycat.testing import ports as _ports
from pycat.testing import serverxml
from pycat.testing.node import Node, NodeError, read_server_xml

ASYNC = 8          # channelSendOptions="8": written to every member's socket, not awaited
SYNC = 6           # channelSendOptions="6": use_ack + sync: the response waits for every member
MEMBER_TIMEOUT = 30.0

MANAGERS = {
    "delta": ("org.apache.catalina.ha.session.DeltaManager",
              {"expireSessionsOnShutdown": "false", "notifyListenersOnReplication": "true",
               "stateTransferTimeout": "30"}),
    "backup": ("org.apache.catalina.ha.session.BackupManager",
               {"expireSessionsOnShutdown": "false", "notifyListenersOnReplication": "true",
                "mapSendOptions": "6"}),
}

CLUSTER_XML = """<Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster" channelSendOptions="{send_options}">
  {manager}
  <Channel className="org.apache.catalina.tribes.group.GroupChannel"{channel_attrs}>
    {membership}
    <Receiver className="org.apache.catalina.tribes.transport.nio.NioReceiver" address="127.0.0.1"
              port="${{cluster.port}}" autoBind="1" selectorTimeout="5000" maxThreads="6"/>
    <Sender className="org.apache.catalina.tribes.transport.ReplicationTransmitter">
      <Transport className="org.apache.catalina.tribes.transport.nio.PooledParallelSender"/>
    </Sender>
    <Interceptor className="org.apache.catalina.tribes.group.interceptors.TcpFailureDetector"/>
    <Interceptor className="org.apache.catalina.tribes.group.interceptors.MessageDispatchInterceptor"/>
    {interceptors}
  </Channel>
  {valves}
  {extra}
</Cluster>"""
#: the how-to's valves and listener (``valves=`` replaces them; without a JvmRouteBinderValve a
#: session keeps its old route after a fail-over)
VALVES = """<Valve className="org.apache.catalina.ha.tcp.ReplicationValve" filter=""/>
  <Valve className="org.apache.catalina.ha.session.JvmRouteBinderValve"/>
  <ClusterListener className="org.apache.catalina.ha.session.ClusterSessionListener"/>"""

MCAST_XML = ('<Membership className="org.apache.catalina.tribes.membership.McastService" address="{group}" '
             'port="{port}" bind="127.0.0.1" frequency="500" dropTime="3000"/>')
STATIC_XML = ('<Membership className="org.apache.catalina.tribes.membership.StaticMembershipService" '
              'connectTimeout="500" expirationTime="3000">\n{members}\n    </Membership>')
STATIC_MEMBER = '      <Member className="org.apache.catalina.tribes.membership.StaticMember" host="127.0.0.1" port="{port}" uniqueId="{uid}"/>'


def manager_xml(manager, attrs=None):
    """The <Manager> element for "delta", "backup", a class name, or None (no element)."""
    if manager is None:
        return ""
    cls, defaults = MANAGERS.get(manager, (manager, {}))
    merged = dict(defaults)
    merged.update({k: str(v) for k, v in (attrs or {}).items()})
    return '<Manager className="%s" %s/>' % (cls, " ".join('%s="%s"' % kv for kv in merged.items()))


def _unique_id(token):
    digest = hashlib.sha256(token.encode()).digest()[:16]
    return "{" + ",".join(str(b) for b in digest) + "}"


class Cluster:
    """The nodes of one cluster (module doc). ``node_options`` go to every ``Node`` (apps,
    properties, fragments, attributes, log_level, env...); ``node_properties`` ({node name:
    {property: value}}) adds properties to single nodes (a setting only one node has)."""

    node_class = Node

    def __init__(self, root, size=2, manager="delta", send_options=ASYNC, membership="multicast",
                 manager_attrs=None, server_xml=None, cluster_xml=None, interceptors="", extra="",
                 valves=VALVES, in_host=False, names=None, node_class=None, node_properties=None,
                 **node_options):
        if node_class is not None:
            self.node_class = node_class
        self.root = os.path.abspath(str(root))
        self.size = size
        self.manager = manager
        self.send_options = send_options
        self.membership = membership
        self.group, self.mcast_port = (None, None)
        self._held = []
        self._closed = False
        if membership == "multicast":
            self.group, self.mcast_port = _ports.mcast_group()
            self._held.append(self.mcast_port)
        elif membership != "static":
            raise ValueError("membership must be 'multicast' or 'static', not %r" % (membership,))
        names = list(names or ["node%d" % i for i in range(1, size + 1)])
        if len(names) != size:
            raise ValueError("%d names for %d nodes" % (len(names), size))
        rx_ports = [self._take_port() for _ in names]
        token = "%s/%d/%s" % (_ports.worker_id(), os.getpid(), self.root)
        members = "\n".join(STATIC_MEMBER.format(port=p, uid=_unique_id(token + n)) for n, p in zip(names, rx_ports))
        base_xml = read_server_xml(server_xml)
        parsed = serverxml.parse(base_xml)
        has_cluster = parsed.find(".//Cluster") is not None
        engine = parsed.find(".//Engine")
        # each node's jvmRoute is its name, unless the file already takes it from ${jvm.route}
        own_route = engine is not None and "${jvm.route" in (engine.get("jvmRoute") or "")
        fragment = ""
        if not has_cluster:
            membership_xml = (MCAST_XML.format(group=self.group, port=self.mcast_port) if membership == "multicast"
                              else STATIC_XML.format(members=members))
            # nothing to add: a static member knows the live members, and they know it, when
            # its channel's start returns (the default 5 s heartbeat only pings and expires)
            channel_attrs = ""
            fragment = (cluster_xml or CLUSTER_XML).format(
                send_options=send_options, manager=manager_xml(manager, manager_attrs),
                membership=membership_xml, interceptors=interceptors, extra=extra, channel_attrs=channel_attrs,
                valves=valves)
        self.nodes = []
        for name, rx in zip(names, rx_ports):
            options = dict(node_options)
            fragments = dict(options.pop("fragments", None) or {})
            where = "host" if in_host else "engine"
            if fragment:
                fragments[where] = (fragments.get(where) or "") + fragment
            attributes = {k: dict(v) for k, v in (options.pop("attributes", None) or {}).items()}
            if not own_route:
                attributes.setdefault("engine", {}).setdefault("jvmRoute", "${jvm.route}")
            properties = dict(options.pop("properties", None) or {})
            properties.update((node_properties or {}).get(name, {}))
            properties.setdefault("cluster.port", rx)
            self.nodes.append(self.node_class(os.path.join(self.root, name), server_xml=base_xml, name=name,
                                              fragments=fragments, attributes=attributes, properties=properties,
                                              group=self.group, shared_port=self.mcast_port, **options))

    def _take_port(self):
        port = _ports.free_port()
        self._held.append(port)
        return port

    def __getitem__(self, index):
        return self.nodes[index]

    def __iter__(self):
        return iter(self.nodes)

    def __len__(self):
        return len(self.nodes)

    def __repr__(self):
        return "<Cluster %s %s>" % (self.membership, self.nodes)

    def node(self, name):
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def running(self):
        return [n for n in self.nodes if n.alive]

    def others(self, node):
        """The running nodes other than ``node``."""
        return [n for n in self.running() if n is not node]

    def node_for(self, session):
        """The node whose jvmRoute ends the session id (a Client, or the id itself)."""
        sid = getattr(session, "session_id", session)
        if not sid or "." not in sid:
            raise ValueError("session id %r carries no jvmRoute" % (sid,))
        return self.node(sid.rsplit(".", 1)[1])

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self, nodes=None, together=False, members=True, timeout=None):
        """Start ``nodes`` (default: all). One after the other, each once the previous one serves
        (as the how-to does: a starting node asks the running ones for their sessions), or all at
        once with ``together``. With ``members``, wait until every running node sees every other."""
        nodes = list(self.nodes if nodes is None else nodes)
        for node in nodes:
            node.start(wait=not together, timeout=timeout)
        for node in nodes:
            node.wait_ready(timeout=timeout)
        if members:
            self.wait_members(timeout=timeout)
        return self

    def member_id(self, node):
        """``node``'s current member id as it sees itself (None while its cluster is not up)."""
        for c in node.cluster_status()["clusters"]:
            if c.get("local_member"):
                return c["local_member"]["id"]
        return None

    def member_ids(self, node):
        """The member ids ``node`` currently sees (itself excluded)."""
        return {m["id"] for c in node.cluster_status()["clusters"] for m in c["members"]}

    def wait_members(self, nodes=None, timeout=None):
        """Every node of ``nodes`` (default: the running ones) sees every other one, as they are now."""
        nodes = list(self.running() if nodes is None else nodes)
        timeout = MEMBER_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        ids = {}
        for node in nodes:
            ids[node] = node.wait_until(lambda n=node: self._try(self.member_id, n), timeout,
                                        "%s's cluster to start" % node.name)
        for me in nodes:
            for other in nodes:
                if other is me:
                    continue
                left = max(0.5, deadline - time.monotonic())
                me.wait_until(lambda m=me, o=other: ids[o] in (self._try(self.member_ids, m) or ()), left,
                              "%s to see %s (member %s)" % (me.name, other.name, ids[other][:12]))
        return ids

    @staticmethod
    def _try(func, node):
        """func(node), or None while the node's deploy channel or cluster is not up yet (a stale
        token file of a killed incarnation, a refused connection); a NodeError (the node died)
        goes through."""
        try:
            return func(node)
        except NodeError:
            raise
        except Exception:
            return None

    def wait_replicated(self, timeout=None):
        """Wait until every session has its copies, as the running nodes' managers count them: for a
        BackupManager, as many backups as primaries; for a DeltaManager, every node holds as many
        sessions as the others.
        Useful before killing a node right after creating sessions. Returns {manager: rows}."""
        nodes = self.running()
        timeout = MEMBER_TIMEOUT if timeout is None else timeout

        def settled():
            by_manager = {}
            for node in nodes:
                status = self._try(lambda n: n.cluster_status(), node)
                if status is None:
                    return None
                for c in status["clusters"]:
                    for row in c["managers"]:
                        by_manager.setdefault(row["name"], []).append(row)
            for rows in by_manager.values():
                if all("roles" in r for r in rows):
                    roles = [r["roles"] for r in rows]
                    primaries = sum(r.get("primary", 0) for r in roles)
                    if sum(r.get("backup", 0) for r in roles) < primaries:
                        return None
                elif len({(r["sessions"] or {}).get("active") for r in rows}) > 1:
                    return None
            return by_manager or {"(no distributable app)": []}
        return nodes[0].wait_until(settled, timeout, "every session to have its copies") if nodes else {}

    def kill(self, node):
        """``kill -9`` one node (the others find out by themselves). Returns the exit code."""
        return node.kill()

    def stop(self, node):
        """Stop one node gracefully (its peers hear it leave)."""
        return node.stop()

    def restart(self, node, graceful=True, timeout=None):
        """Start ``node`` again (stopping it first if it runs) and wait until it serves, it and every
        running node see each other, and its sessions arrived (``wait_state_transfer``)."""
        if node.alive:
            node.stop() if graceful else node.kill()
        node.start(timeout=timeout)
        self.wait_members(timeout=timeout)
        self.wait_state_transfer(node, timeout=timeout)
        return node

    def wait_state_transfer(self, node, timeout=None):
        """Wait until every DeltaManager of ``node`` has its session state from a peer (its state
        transfer ran; apps start before the connector serves, so a node that answers HTTP is past
        it). No-op without other running members. Returns {manager name: seconds}."""
        if not self.others(node):
            return {}
        node.wait_ready(timeout=timeout)

        def transferred():
            status = self._try(lambda n: n.cluster_status(), node)
            if status is None:
                return None
            rows = [m for c in status["clusters"] for m in c["managers"] if "state_transfer_seconds" in m]
            if any(m["state_transfer_seconds"] is None for m in rows):
                return None
            return {m["name"]: m["state_transfer_seconds"] for m in rows} or {"(no DeltaManager)": 0}
        return node.wait_until(transferred, timeout, "%s's session state transfer" % node.name)

    def close(self, remove_base=None):
        """Stop every node (SIGKILL after 30 s each) and release the cluster's ports."""
        if self._closed:
            return
        self._closed = True
        for node in self.nodes:
            node.terminate()              # all at once: the graceful stops overlap
        for node in self.nodes:
            node.close(remove_base)
        for port in self._held:
            _ports.release_port(port)
        self._held = []
