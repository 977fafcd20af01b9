"""The server.xml rule table: pure data, read by the generic engine in digester.py.

A row is ``Rule(pattern, default_class, method, kind, args)``:

* ``pattern``: an element path ("Server/Service/Engine") or a suffix after ``*/`` ("*/Valve");
  an exact path beats a wildcard, a longer wildcard beats a shorter one (Tomcat's RulesBase).
* ``default_class``: the class created when the element has no ``className``; None means
  ``className`` is required (Listener, Valve, Realm, every Cluster sub-element).
* ``method``: the parent's method called with the finished child (after its attributes and
  nested elements are set), e.g. ``add_service``; None for the root.
* ``kind``: OBJECT (create an object), BODY (call ``parent.method(text)``), CALL (call
  ``parent.method(*attribute values named in args)``), RECORD (keep the element's attributes,
  className included, in a ``KeptElement``: parsed and kept, not acted upon yet).

AUTO_LISTENERS adds a listener class to every object a pattern creates (Tomcat's HostRuleSet
adds HostConfig to each Host).
"""
from collections import namedtuple

OBJECT, BODY, CALL, RECORD = "object", "body", "call", "record"

Rule = namedtuple("Rule", "pattern default_class method kind args")
Rule.__new__.__defaults__ = (OBJECT, ())

SERVER = "Server"
SERVICE = SERVER + "/Service"
CONNECTOR = SERVICE + "/Connector"
ENGINE = SERVICE + "/Engine"
HOST = ENGINE + "/Host"
CONTEXT = HOST + "/Context"


def _context_rules(prefix):
    """Context and its children; prefix "" makes them usable for conf/context.xml and
    META-INF/context.xml, whose root element is <Context>."""
    c = prefix + "Context"
    return [
        Rule(c + "/Listener", None, "add_lifecycle_listener"),
        Rule(c + "/Manager", "pycat.session.manager:StandardManager", "set_manager"),
        Rule(c + "/Manager/Store", None, "set_store"),
        Rule(c + "/Manager/SessionIdGenerator", None, "set_session_id_generator"),
        Rule(c + "/Parameter", None, "add_parameter", CALL, ("name", "value")),
        Rule(c + "/WatchedResource", None, "add_watched_resource", BODY),
        Rule(c + "/Resources", None, "set_resources", RECORD),
        Rule(c + "/Loader", None, "set_loader", RECORD),
        Rule(c + "/Resource", None, "add_resource", RECORD),
        Rule(c + "/ResourceLink", None, "add_resource_link", RECORD),
        Rule(c + "/Environment", None, "add_environment", RECORD),
        Rule(c + "/CookieProcessor", None, "set_cookie_processor", RECORD),
        Rule(c + "/JarScanner", None, "set_jar_scanner", RECORD),
    ]


def _cluster_rules(prefix):
    """Tomcat's ClusterRuleSet, applied under Engine and under Host. No defaults: className
    is mandatory on every element, as in Tomcat."""
    cl = prefix + "Cluster"
    ch = cl + "/Channel"
    return [
        Rule(cl, None, "set_cluster"),
        Rule(cl + "/Manager", None, "set_manager_template"),
        Rule(cl + "/Manager/SessionIdGenerator", None, "set_session_id_generator"),
        Rule(ch, None, "set_channel"),
        Rule(ch + "/Membership", None, "set_membership"),
        Rule(ch + "/Membership/Member", None, "add_static_member"),
        Rule(ch + "/Membership/LocalMember", None, "set_local_member"),
        Rule(ch + "/MembershipListener", None, "add_membership_listener"),
        Rule(ch + "/Sender", None, "set_sender"),
        Rule(ch + "/Sender/Transport", None, "set_transport"),
        Rule(ch + "/Receiver", None, "set_receiver"),
        Rule(ch + "/Interceptor", None, "add_interceptor"),
        Rule(ch + "/Interceptor/Member", None, "add_member"),
        Rule(ch + "/Interceptor/LocalMember", None, "set_local_member"),
        Rule(ch + "/ChannelListener", None, "add_channel_listener"),
        Rule(cl + "/Valve", None, "add_valve"),
        Rule(cl + "/Deployer", None, "set_cluster_deployer"),
        Rule(cl + "/Listener", None, "add_lifecycle_listener"),
        Rule(cl + "/ClusterListener", None, "add_cluster_listener"),
    ]


RULES = [
    Rule(SERVER, "pycat.core.server:Server", None),
    Rule(SERVER + "/Listener", None, "add_lifecycle_listener"),
    Rule(SERVER + "/GlobalNamingResources", "pycat.core.naming:NamingResources", "set_global_naming_resources"),
    Rule(SERVER + "/GlobalNamingResources/Resource", "pycat.core.naming:ResourceRecord", "add_resource"),
    Rule(SERVER + "/GlobalNamingResources/Environment", "pycat.core.naming:ResourceRecord", "add_environment"),
    Rule(SERVICE, "pycat.core.service:Service", "add_service"),
    Rule(SERVICE + "/Listener", None, "add_lifecycle_listener"),
    Rule(SERVICE + "/Executor", "pycat.core.executor:Executor", "add_executor"),
    Rule(CONNECTOR, "pycat.connector.connector:Connector", "add_connector"),
    Rule(CONNECTOR + "/SSLHostConfig", "pycat.connector.ssl:SSLHostConfig", "add_ssl_host_config"),
    Rule(CONNECTOR + "/SSLHostConfig/Certificate", "pycat.connector.ssl:Certificate", "add_certificate"),
    # kept and logged as unsupported by the Connector (HTTP/2 is not served): className not resolved
    Rule(CONNECTOR + "/UpgradeProtocol", None, "add_upgrade_protocol", RECORD),
    Rule(CONNECTOR + "/Listener", None, "add_lifecycle_listener"),
    Rule(ENGINE, "pycat.core.engine:Engine", "set_container"),
    Rule(ENGINE + "/Listener", None, "add_lifecycle_listener"),
    Rule(HOST, "pycat.core.host:Host", "add_child"),
    Rule(HOST + "/Alias", None, "add_alias", BODY),
    Rule(HOST + "/Listener", None, "add_lifecycle_listener"),
    Rule(CONTEXT, "pycat.core.context:Context", "add_child"),
    # a context.xml file (conf/context.xml, META-INF/context.xml) has <Context> as its root
    Rule("Context", "pycat.core.context:Context", None),
    Rule("*/Valve", None, "add_valve"),
    Rule("*/Realm", None, "set_realm"),
    Rule("*/Realm/Realm", None, "add_realm"),
    Rule("*/Realm/CredentialHandler", None, "set_credential_handler"),
    Rule("*/CredentialHandler/CredentialHandler", None, "add_credential_handler"),
]
RULES += _context_rules(HOST + "/")
RULES += _context_rules("")
RULES += _cluster_rules(ENGINE + "/")
RULES += _cluster_rules(HOST + "/")

AUTO_LISTENERS = {
    HOST: "pycat.startup.host_config:HostConfig",
}
