"""className resolution: Tomcat FQCNs, pycat dotted paths and any importable Python class.

``load_class(name, base)`` accepts
  * a Tomcat class name from ALIASES (``org.apache.catalina.ha.tcp.SimpleTcpCluster``);
  * a Tomcat class with no meaning in Python (NO_OPS): it maps to a no-op listener and the
    reason is logged at info level, so a stock Tomcat server.xml starts;
  * ``package.module:Class`` or ``package.module.Class`` for anything importable.
An unknown name raises ConfigError naming the nearest known names; a Tomcat name whose pycat
target does not exist yet raises ConfigError saying it is recognised but not implemented.

The table is data: the only place outside startup/rules.py that names concrete classes, and it
names them as strings, so importing this module imports none of them.
"""
import difflib
import importlib
import logging
import sys

from pycat.errors import ConfigError

log = logging.getLogger(__name__)

_C = "org.apache.catalina."
_T = "org.apache.catalina.tribes."
_TI = _T + "group.interceptors."

ALIASES = {
    # container
    _C + "core.StandardServer": "pycat.core.server:Server",
    _C + "core.StandardService": "pycat.core.service:Service",
    _C + "core.StandardEngine": "pycat.core.engine:Engine",
    _C + "core.StandardHost": "pycat.core.host:Host",
    _C + "core.StandardContext": "pycat.core.context:Context",
    _C + "core.StandardThreadExecutor": "pycat.core.executor:Executor",
    _C + "connector.Connector": "pycat.connector.connector:Connector",
    _C + "startup.VersionLoggerListener": "pycat.core.listeners:VersionLoggerListener",
    # valves
    _C + "valves.AccessLogValve": "pycat.valves.access_log:AccessLogValve",
    _C + "valves.ErrorReportValve": "pycat.valves.error_report:ErrorReportValve",
    _C + "valves.RemoteAddrValve": "pycat.valves.remote_addr:RemoteAddrValve",
    _C + "valves.RemoteHostValve": "pycat.valves.remote_addr:RemoteHostValve",
    _C + "valves.RemoteIpValve": "pycat.valves.remote_ip:RemoteIpValve",
    # realms and credential handlers (pycat.realm)
    _C + "realm.LockOutRealm": "pycat.realm.realms:LockOutRealm",
    _C + "realm.CombinedRealm": "pycat.realm.realms:CombinedRealm",
    _C + "realm.UserDatabaseRealm": "pycat.realm.realms:UserDatabaseRealm",
    _C + "realm.MemoryRealm": "pycat.realm.realms:MemoryRealm",
    _C + "realm.MessageDigestCredentialHandler": "pycat.realm.credential:MessageDigestCredentialHandler",
    _C + "realm.SecretKeyCredentialHandler": "pycat.realm.credential:SecretKeyCredentialHandler",
    _C + "realm.NestedCredentialHandler": "pycat.realm.credential:NestedCredentialHandler",
    # sessions
    _C + "session.StandardManager": "pycat.session.manager:StandardManager",
    _C + "session.PersistentManager": "pycat.session.persistent:PersistentManager",
    _C + "session.FileStore": "pycat.session.store_file:FileStore",
    _C + "session.JDBCStore": "pycat.session.store_jdbc:JDBCStore",
    # cluster (ha)
    _C + "ha.tcp.SimpleTcpCluster": "pycat.ha.cluster:SimpleTcpCluster",
    _C + "ha.session.DeltaManager": "pycat.ha.session.delta_manager:DeltaManager",
    _C + "ha.session.BackupManager": "pycat.ha.session.backup_manager:BackupManager",
    _C + "ha.tcp.ReplicationValve": "pycat.ha.replication_valve:ReplicationValve",
    _C + "ha.session.JvmRouteBinderValve": "pycat.ha.jvm_route_binder:JvmRouteBinderValve",
    _C + "ha.session.ClusterSessionListener": "pycat.ha.session.listener:ClusterSessionListener",
    _C + "ha.session.JvmRouteSessionIDBinderListener": "pycat.ha.session.listener:JvmRouteSessionIDBinderListener",
    _C + "ha.deploy.FarmWarDeployer": "pycat.ha.deploy.farm_war_deployer:FarmWarDeployer",
    # tribes
    _T + "group.GroupChannel": "pycat.tribes.group.group_channel:GroupChannel",
    _T + "membership.McastService": "pycat.tribes.membership.mcast:McastService",
    _T + "membership.StaticMembershipService": "pycat.tribes.membership.static:StaticMembershipService",
    _T + "membership.StaticMember": "pycat.tribes.membership.static:StaticMember",
    _T + "membership.LocalStaticMember": "pycat.tribes.membership.static:StaticMember",
    _T + "membership.MemberImpl": "pycat.tribes.membership.static:StaticMember",
    _T + "membership.StaticMembershipProvider": "pycat.tribes.membership.static:StaticMembershipService",
    _T + "transport.nio.NioReceiver": "pycat.tribes.transport.receiver:NioReceiver",
    _T + "transport.ReplicationTransmitter": "pycat.tribes.transport.sender:ReplicationTransmitter",
    _T + "transport.nio.PooledParallelSender": "pycat.tribes.transport.sender:PooledParallelSender",
    _TI + "TcpFailureDetector": "pycat.tribes.group.interceptors.tcp_failure_detector:TcpFailureDetector",
    _TI + "MessageDispatchInterceptor": "pycat.tribes.group.interceptors.message_dispatch:MessageDispatchInterceptor",
    _TI + "MessageDispatch15Interceptor": "pycat.tribes.group.interceptors.message_dispatch:MessageDispatchInterceptor",
    _TI + "ThroughputInterceptor": "pycat.tribes.group.interceptors.throughput:ThroughputInterceptor",
    _TI + "TcpPingInterceptor": "pycat.tribes.group.interceptors.tcp_ping:TcpPingInterceptor",
    _TI + "DomainFilterInterceptor": "pycat.tribes.group.interceptors.domain_filter:DomainFilterInterceptor",
    _TI + "OrderInterceptor": "pycat.tribes.group.interceptors.order:OrderInterceptor",
    _TI + "FragmentationInterceptor": "pycat.tribes.group.interceptors.fragmentation:FragmentationInterceptor",
    _TI + "GzipInterceptor": "pycat.tribes.group.interceptors.gzip:GzipInterceptor",
    _TI + "EncryptInterceptor": "pycat.tribes.group.interceptors.encrypt:EncryptInterceptor",
    _TI + "StaticMembershipInterceptor": "pycat.tribes.group.interceptors.static_membership:StaticMembershipInterceptor",
    _TI + "NonBlockingCoordinator": "pycat.tribes.group.interceptors.coordinator:NonBlockingCoordinator",
    # pycat's own, no Tomcat twin: HMAC-SHA256 under the cluster secret
    "pycat.AuthInterceptor": "pycat.tribes.group.interceptors.auth:AuthInterceptor",
}

_JVM_ONLY = "JVM-specific; nothing to do in Python"
NO_OPS = {
    _C + "core.AprLifecycleListener": "APR/native library loader; pycat uses Python's ssl module",
    _C + "core.OpenSSLLifecycleListener": "OpenSSL via Panama; pycat uses Python's ssl module",
    _C + "core.JreMemoryLeakPreventionListener": _JVM_ONLY,
    _C + "core.ThreadLocalLeakPreventionListener": _JVM_ONLY + " (no ThreadLocals to renew)",
    _C + "core.JasperListener": "JSP engine; pycat serves Python apps, not JSP",
    _C + "mbeans.GlobalResourcesLifecycleListener": "JMX MBeans; GlobalNamingResources are parsed and kept",
    _C + "mbeans.ServerLifecycleListener": "JMX MBeans",
    _C + "mbeans.JmxRemoteLifecycleListener": "JMX remote",
    _C + "security.SecurityListener": "JVM security checks at startup",
    _C + "startup.UserConfig": "per-user web apps are not supported",
    _C + "core.PropertiesRoleMappingListener": "role mapping is handled by the realm",
}
NOOP_CLASS = "pycat.core.listeners:NoopListener"


def _import(path):
    """Import 'pkg.mod:Class' or 'pkg.mod.Class'; raise ImportError/AttributeError as they come."""
    if ":" in path:
        module_name, _, qualname = path.partition(":")
    else:
        module_name, _, qualname = path.rpartition(".")
        if not module_name:
            raise ImportError("%r is not a dotted path" % path)
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


# what a pycat package not built yet will bring, by the longest matching package of its alias target
PLANNED = {
    "pycat.ha": "session replication",
    "pycat.ha.deploy": "farm deployment",
}


def _not_built_yet(path, exc):
    """True when an alias's pycat target does not exist yet (its module, a parent package, or the
    class in an existing module); an import failing *inside* an existing module is a real error."""
    module_name = path.partition(":")[0] if ":" in path else path.rpartition(".")[0]
    if not module_name.startswith("pycat."):
        return False
    if isinstance(exc, ModuleNotFoundError):
        missing = exc.name or ""
        return missing.startswith("pycat.") and (module_name == missing or module_name.startswith(missing + "."))
    if isinstance(exc, AttributeError):
        module = sys.modules.get(module_name)
        return module is not None and getattr(exc, "obj", None) is module
    return False


def _planned(path):
    module_name = path.partition(":")[0]
    best = ""
    for package in PLANNED:
        if (module_name == package or module_name.startswith(package + ".")) and len(package) > len(best):
            best = package
    return PLANNED[best] if best else path


def known_names():
    return sorted(set(ALIASES) | set(NO_OPS) | set(ALIASES.values()))


def load_class(name, base=None):
    """Resolve a className to a Python class (see module doc). Raises ConfigError."""
    name = (name or "").strip()
    if not name:
        raise ConfigError("empty className")
    if name in NO_OPS:
        log.info("%s: %s; mapped to a no-op listener", name, NO_OPS[name])
        path = NOOP_CLASS
    else:
        path = ALIASES.get(name, name)
    try:
        cls = _import(path)
    except (ImportError, AttributeError) as exc:
        if path != name and _not_built_yet(path, exc):
            raise ConfigError("Tomcat class %s is recognised but not implemented in this version of pycat "
                              "(planned: %s); remove the element" % (name, _planned(path))) from exc
        close = difflib.get_close_matches(name, known_names(), n=3, cutoff=0.6)
        if not close:
            short = name.rsplit(".", 1)[-1].rsplit(":", 1)[-1]
            close = [k for k in known_names() if k.rsplit(".", 1)[-1].rsplit(":", 1)[-1] == short][:3]
        hint = "; did you mean %s?" % " or ".join(close) if close else ""
        if path != name:
            raise ConfigError("className %s maps to %s, which cannot be loaded (%s)" % (name, path, exc)) from exc
        raise ConfigError("unknown className %s (%s)%s" % (name, exc, hint)) from exc
    if not isinstance(cls, type) and not callable(cls):
        raise ConfigError("className %s is not a class" % name)
    if base is not None and isinstance(cls, type) and not issubclass(cls, base):
        raise ConfigError("className %s is not a %s" % (name, base.__name__))
    return cls
