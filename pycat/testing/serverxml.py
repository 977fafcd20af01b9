"""server.xml for test nodes: the default one, fragments, and the rewrites that keep a node private.

A test node must not meet anything else on the machine: another worker's node, a real cluster on
the LAN, the next test. ``isolate`` does that to any server.xml (the default below, a string, a
file such as Tomcat's stock one):

* every literal ``port="N"`` (N > 0) becomes a held free port (``ports.free_port``), the same N
  getting the same new port within one file; the Server's shutdown port, Connectors, the cluster
  Receiver... ``<Membership port>`` instead takes the port its cluster shares (``shared``), and
  the static ``<Member>`` lists are left alone (the cluster builder writes those);
* a ``<Connector>`` without ``address`` gets ``address="127.0.0.1"``, a ``<Receiver>`` with
  ``address="auto"`` (or none) gets 127.0.0.1, a ``<Membership>`` without ``bind`` binds 127.0.0.1
  and takes the cluster's own multicast group;
* every ``${NAME.port}`` / ``${NAME.port:-default}`` placeholder names a port the node gets free
  (unless the test set that property), so ``${http.port}`` and ``${ajp.port}`` just work.

Plain ``xml.etree`` (comments kept); the file is the test's own, never input from the network.
"""
import re
import xml.etree.ElementTree as ET

#: pycat's conf/server.xml reduced to what a test node needs, on 127.0.0.1 only, with a one-second
#: background tick (autoDeploy of dropped apps and session expiry within a second or two)
DEFAULT_SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="${shutdown.port}" shutdown="SHUTDOWN">
  <Listener className="org.apache.catalina.startup.VersionLoggerListener"/>
  <Service name="Catalina">
    <Connector port="${http.port}" address="127.0.0.1" protocol="HTTP/1.1" connectionTimeout="20000"/>
    <Engine name="Catalina" defaultHost="localhost" jvmRoute="${jvm.route}" backgroundProcessorDelay="1">
      <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="true">
        <Valve className="org.apache.catalina.valves.AccessLogValve" directory="logs"
               prefix="localhost_access_log" suffix=".txt" pattern="common"/>
      </Host>
    </Engine>
  </Service>
</Server>
"""

PORT_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.\-]*port)(?::-[^}]*)?\}")
_PLACEHOLDER = re.compile(r"\$\{([^}:]+)(?::-([^}]*))?\}")
ELEMENTS = ("server", "service", "engine", "host")


def parse(text):
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    return ET.fromstring(text, parser=parser)


def serialize(root):
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def first(root, tag):
    """The first element named ``tag`` (the root itself for "Server")."""
    if root.tag == tag:
        return root
    return root.find(".//" + tag)


def _tag(name):
    """"engine" -> "Engine" (the element names a fragment key may use)."""
    return name[:1].upper() + name[1:]


def add_fragments(root, fragments):
    """Insert each ``{element: xml text}`` into the first element of that name ("server", "service",
    "engine", "host", or any element name): Service fragments before the Engine (Connectors,
    Executors), the others after the element's children."""
    for where, text in (fragments or {}).items():
        if not text:
            continue
        parent = first(root, _tag(where))
        if parent is None:
            raise ValueError("server.xml has no <%s> for the fragment %r" % (_tag(where), text[:80]))
        children = list(parse("<fragment>%s</fragment>" % text))
        if parent.tag == "Service":
            engine = parent.find("Engine")
            at = list(parent).index(engine) if engine is not None else len(parent)
            for offset, child in enumerate(children):
                parent.insert(at + offset, child)
        else:
            parent.extend(children)


def set_attributes(root, attributes):
    """``{element: {attribute: value}}`` set on the first element of each name (overwriting)."""
    for where, attrs in (attributes or {}).items():
        element = first(root, _tag(where))
        if element is None:
            raise ValueError("server.xml has no <%s> to set %s on" % (_tag(where), sorted(attrs)))
        for key, value in attrs.items():
            element.set(key, str(value))


def isolate(root, take_port, group=None, shared_port=None):
    """Rewrite ``root`` in place (module doc). ``take_port()`` gives a held port; ``group`` and
    ``shared_port`` are the cluster's multicast group and port (for <Membership>). Returns
    {original literal port: new port}."""
    mapped = {}
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue            # a comment
        tag = element.tag
        if tag == "Connector" and element.get("address") is None:
            element.set("address", "127.0.0.1")
        if tag == "Receiver" and element.get("address") in (None, "", "auto"):
            element.set("address", "127.0.0.1")
        if tag == "Membership" and element.get("bind") is None and "Static" not in (element.get("className") or ""):
            element.set("bind", "127.0.0.1")
        if tag == "Membership" and group is not None and "Static" not in (element.get("className") or ""):
            element.set("address", group)
        port = element.get("port")
        if port is None or not port.strip().isdigit() or int(port) <= 0:
            continue
        if tag in ("Member", "LocalMember"):
            continue
        if tag == "Membership":
            if shared_port is not None:
                element.set("port", str(shared_port))
            continue
        old = int(port)
        if old not in mapped:
            mapped[old] = take_port()
        element.set("port", str(mapped[old]))
    return mapped


def port_properties(text):
    """The property names of every ``${...port}`` placeholder in ``text``, in order, once each."""
    seen = []
    for name in PORT_PLACEHOLDER.findall(text):
        if name not in seen:
            seen.append(name)
    return seen


def resolve(value, properties):
    """``value`` with ``${name}`` / ``${name:-default}`` replaced from ``properties`` (one round)."""
    if value is None or "${" not in value:
        return value

    def repl(match):
        name, default = match.group(1), match.group(2)
        if name in properties:
            return str(properties[name])
        return default if default is not None else match.group(0)
    return _PLACEHOLDER.sub(repl, value)


def http_connector_port(root, properties):
    """The port of the first Connector that is not AJP (an int, or None)."""
    for connector in root.iter("Connector"):
        if "AJP" in (connector.get("protocol") or "").upper():
            continue
        port = resolve(connector.get("port"), properties)
        if port and port.strip().isdigit():
            return int(port)
    return None


def app_base(root):
    """The first Host's appBase as written ("webapps" when absent)."""
    host = first(root, "Host")
    return (host.get("appBase") if host is not None else None) or "webapps"
