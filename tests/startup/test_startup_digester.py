"""The digester engine and the rule table, on XML strings with stand-in classes (module:Class)."""
import logging

import pytest

from pycat.errors import ConfigError
from pycat.startup import rules
from pycat.startup.digester import Digester, KeptElement, RuleSet

D = "startup_dummies:"


def digest(xml, props=None, strict=False, source="server.xml"):
    d = Digester(properties=props, strict=strict)
    return d.parse_string(xml, source=source), d


SERVER = """<?xml version="1.0"?>
<Server className="{d}Server" port="${{shut.port:-8005}}" shutdown="STOP">
  <Listener className="{d}Listener"/>
  <Service className="{d}Service" name="Catalina">
    <Connector className="{d}Connector" port="${{http.port}}" connectionTimeout="20000" secure="TRUE"/>
    <Engine className="{d}Engine" name="Catalina" defaultHost="localhost" jvmRoute="${{route}}">
      <Valve className="{d}Valve" pattern="first"/>
      <Host className="{d}Host" name="localhost" appBase="webapps">
        <Alias>www.${{domain:-example.org}}</Alias>
        <Context className="{d}Context" path="/app">
          <Parameter name="greeting" value="hello ${{who:-world}}" override="false"/>
          <WatchedResource>WEB-INF/web.xml</WatchedResource>
          <Resources className="org.apache.catalina.webresources.StandardRoot" cachingAllowed="false"/>
        </Context>
      </Host>
      <Valve className="{d}Valve" pattern="second"/>
    </Engine>
  </Service>
</Server>
""".format(d=D)


def test_builds_the_tree_in_document_order_with_properties():
    server, d = digest(SERVER, {"http.port": "18080", "route": "node1"})
    assert type(server).__name__ == "Server" and server.port == 8005 and server.shutdown == "STOP"
    assert [type(x).__name__ for x in server.listeners] == ["Listener"]
    (method, service), = server.calls
    assert method == "add_service" and service.name == "Catalina"
    (m1, connector), (m2, engine) = service.calls
    assert (m1, m2) == ("add_connector", "set_container")
    assert connector.port == 18080 and connector.connection_timeout == 20000 and connector.secure is True
    assert engine.jvm_route == "node1" and engine.default_host == "localhost"
    # valves and hosts keep document order
    assert [c[0] for c in engine.calls] == ["add_valve", "add_child", "add_valve"]
    assert engine.calls[0][1].pattern == "first" and engine.calls[2][1].pattern == "second"
    host = engine.calls[1][1]
    assert host.app_base == "webapps"
    assert host.calls[0] == ("add_alias", "www.example.org")
    # every Host gets the HostConfig deployer listener, as Tomcat's HostRuleSet adds it
    assert [type(x).__name__ for x in host.listeners] == ["HostConfig"]
    ctx = host.calls[1][1]
    assert host.calls[1][0] == "add_child" and ctx.path == "/app"
    assert ctx.calls[0] == ("add_parameter", "greeting", "hello world")
    assert ctx.calls[1] == ("add_watched_resource", "WEB-INF/web.xml")
    method, kept = ctx.calls[2]
    assert method == "set_resources" and isinstance(kept, KeptElement)
    assert kept.attributes["className"] == "org.apache.catalina.webresources.StandardRoot"
    assert d.warnings == []


def test_child_is_complete_before_it_is_attached():
    xml = ('<Server className="{d}Server"><Service className="{d}SnapshotService">'
           '<Connector className="{d}Connector" port="8443">'
           '<SSLHostConfig className="{d}Generic"/></Connector></Service></Server>').format(d=D)
    server, _ = digest(xml)
    # attributes set and nested elements attached before the parent method ran
    assert server.calls[0][1].snapshots == [(8443, ["add_ssl_host_config"])]


def test_unknown_attribute_warns_with_file_line_and_path(caplog):
    xml = '<Server className="%sServer">\n  <Service className="%sService" name="x" bogus="1" optional="x"/>\n</Server>' % (D, D)
    with caplog.at_level(logging.WARNING):
        _, d = digest(xml)
    assert d.warnings == ["server.xml:2: Match [Server/Service] failed to set property [bogus] to [1]"]
    assert "failed to set property [bogus]" in caplog.text
    assert "optional" not in caplog.text


def test_unknown_attribute_is_an_error_in_strict_mode():
    xml = '<Server className="%sServer">\n  <Service className="%sService" bogus="1"/>\n</Server>' % (D, D)
    with pytest.raises(ConfigError) as err:
        digest(xml, strict=True)
    assert "server.xml:2" in str(err.value) and "[bogus]" in str(err.value)


def test_generic_set_property_fallback_takes_anything():
    xml = '<Server className="%sServer"><Service className="%sGeneric" anything="${v}"/></Server>' % (D, D)
    server, d = digest(xml, {"v": "42"})
    assert server.calls[0][1].props == {"anything": "42"}
    assert d.warnings == []


def test_bad_attribute_type_names_file_line_and_element():
    xml = '<Server className="%sServer">\n<Service className="%sService">\n  <Connector className="%sConnector"\n     port="80a"/>\n</Service></Server>' % (D, D, D)
    with pytest.raises(ConfigError) as err:
        digest(xml)
    msg = str(err.value)
    # libxml2 reports the line where the start tag ends (here the line of the bad attribute)
    assert msg.startswith("server.xml:4 <Server/Service/Connector>")
    assert "[port]" in msg and "80a" in msg
    assert err.value.line == 4


def test_malformed_xml_names_line_and_column():
    xml = '<Server className="%sServer">\n  <Service>\n    <Engine name="x">\n  </Service>\n</Server>' % D
    with pytest.raises(ConfigError) as err:
        digest(xml)
    msg = str(err.value)
    assert err.value.line == 4
    assert "line 4, column" in msg and "server.xml:4" in msg and "Engine" in msg


def test_unknown_class_name_names_element_line_and_close_matches():
    xml = ('<Server className="%sServer">\n<Service className="%sService">\n'
           '<Engine className="%sEngine">\n'
           '  <Valve className="org.apache.catalina.valves.AccessLogValv"/>\n'
           '</Engine></Service></Server>') % (D, D, D)
    with pytest.raises(ConfigError) as err:
        digest(xml)
    msg = str(err.value)
    assert "server.xml:4" in msg and "<Server/Service/Engine/Valve>" in msg
    assert "did you mean org.apache.catalina.valves.AccessLogValve" in msg


def test_missing_required_class_name():
    xml = '<Server className="%sServer"><Listener/></Server>' % D
    with pytest.raises(ConfigError, match="className is required on <Listener>"):
        digest(xml)


def test_constructor_failure_is_a_config_error():
    xml = '<Server className="%sServer">\n<Listener className="%sBroken"/></Server>' % (D, D)
    with pytest.raises(ConfigError, match=r"server.xml:2 .*constructor exploded"):
        digest(xml)


def test_unknown_element_warns_and_is_an_error_when_strict():
    xml = '<Server className="%sServer">\n  <Servce name="typo"><Engine/></Servce>\n</Server>' % D
    _, d = digest(xml)
    assert d.warnings == ["server.xml:2: no rule for element [Server/Servce]; ignored with its content"]
    with pytest.raises(ConfigError, match="Servce"):
        digest(xml, strict=True)


def test_parent_without_the_method_is_an_error():
    xml = '<Server className="%sServer"><Service className="%sService"><Engine className="%sListener"><Host className="%sHost"/></Engine></Service></Server>' % (D, D, D, D)
    with pytest.raises(ConfigError, match="Listener does not accept <Host>"):
        digest(xml)


def test_wrong_root_element():
    with pytest.raises(ConfigError, match="unexpected root element <Servr>"):
        digest("<Servr/>")


def test_realm_nesting_and_credential_handler():
    xml = ('<Server className="{d}Server"><Service className="{d}Service"><Engine className="{d}Engine">'
           '<Realm className="{d}Generic" kind="lockout"><Realm className="{d}Generic" kind="db">'
           '<CredentialHandler className="{d}Generic" algorithm="sha-256"/></Realm></Realm>'
           '</Engine></Service></Server>').format(d=D)
    server, _ = digest(xml)
    engine = server.calls[0][1].calls[0][1]
    method, outer = engine.calls[0]
    assert method == "set_realm" and outer.props == {"kind": "lockout"}
    method, inner = outer.calls[0]
    assert method == "add_realm" and inner.props == {"kind": "db"}
    assert inner.calls[0][0] == "set_credential_handler" and inner.calls[0][1].props == {"algorithm": "sha-256"}


CLUSTER = """<Server className="{d}Server"><Service className="{d}Service"><Engine className="{d}Engine">
<Host className="{d}Host">{cluster}</Host>{cluster}</Engine></Service></Server>"""
CLUSTER_BODY = """
<Cluster className="{d}Generic" channelSendOptions="8">
  <Manager className="{d}Generic" expireSessionsOnShutdown="false"/>
  <Channel className="{d}Generic">
    <Membership className="{d}Generic" address="228.0.0.4">
      <Member className="{d}Generic" host="a"/>
      <LocalMember className="{d}Generic" host="me"/>
    </Membership>
    <Receiver className="{d}Generic" port="4000"/>
    <Sender className="{d}Generic"><Transport className="{d}Generic"/></Sender>
    <Interceptor className="{d}Generic" n="1"/>
    <Interceptor className="{d}Generic" n="2">
      <Member className="{d}Generic" host="b"/>
      <LocalMember className="{d}Generic" host="me"/>
    </Interceptor>
  </Channel>
  <Valve className="{d}Generic"/>
  <Deployer className="{d}Generic"/>
  <ClusterListener className="{d}Generic"/>
</Cluster>"""


def _cluster_calls(cluster):
    calls = [c[0] for c in cluster.calls]
    channel = cluster.calls[1][1]
    membership = channel.calls[0][1]
    sender = channel.calls[2][1]
    second_interceptor = channel.calls[4][1]
    return (calls, [c[0] for c in channel.calls], [c[0] for c in membership.calls],
            [c[0] for c in sender.calls], [c[0] for c in second_interceptor.calls],
            [c[1].props["n"] for c in channel.calls if c[0] == "add_interceptor"])


def test_cluster_rule_set_under_engine_and_host():
    body = CLUSTER_BODY.format(d=D)
    server, d = digest(CLUSTER.format(d=D, cluster=body))
    engine = server.calls[0][1].calls[0][1]
    assert [c[0] for c in engine.calls] == ["add_child", "set_cluster"]
    host = engine.calls[0][1]
    expected = (["set_manager_template", "set_channel", "add_valve", "set_cluster_deployer", "add_cluster_listener"],
                ["set_membership", "set_receiver", "set_sender", "add_interceptor", "add_interceptor"],
                ["add_static_member", "set_local_member"],
                ["set_transport"],
                ["add_member", "set_local_member"],
                ["1", "2"])
    assert _cluster_calls(engine.calls[1][1]) == expected
    assert host.calls[0][0] == "set_cluster"
    assert _cluster_calls(host.calls[0][1]) == expected
    assert d.warnings == []


def test_cluster_elements_require_class_name():
    xml = CLUSTER.format(d=D, cluster="<Cluster className='%sGeneric'><Channel/></Cluster>" % D)
    with pytest.raises(ConfigError, match="className is required on <Channel>"):
        digest(xml)


def test_context_xml_root_uses_the_context_rules():
    xml = ('<Context className="%sContext" path="/x"><WatchedResource>WEB-INF/web.xml</WatchedResource>'
           '<WatchedResource>${catalina.base}/conf/web.xml</WatchedResource></Context>') % D
    ctx, _ = digest(xml, {"catalina.base": "/srv/node1"})
    assert ctx.calls == [("add_watched_resource", "WEB-INF/web.xml"),
                         ("add_watched_resource", "/srv/node1/conf/web.xml")]


def test_rule_matching_prefers_exact_then_longest_wildcard():
    rs = RuleSet()
    assert rs.match("Server/Service/Engine/Host/Context").method == "add_child"
    assert rs.match("Server/Service/Engine/Realm").method == "set_realm"
    assert rs.match("Server/Service/Engine/Realm/Realm").method == "add_realm"
    assert rs.match("Server/Service/Engine/Realm/Realm/Realm").method == "add_realm"
    assert rs.match("Server/Service/Engine/Host/Cluster/Valve").method == "add_valve"
    assert rs.match("Valve") is None  # "*/" needs a parent
    assert rs.match("Server/Service/Engine/Nope") is None


def test_rule_table_is_pure_data():
    for rule in rules.RULES:
        assert isinstance(rule.pattern, str)
        assert rule.default_class is None or (isinstance(rule.default_class, str) and ":" in rule.default_class)
        assert rule.kind in (rules.OBJECT, rules.BODY, rules.CALL, rules.RECORD)
    patterns = [r.pattern for r in rules.RULES]
    assert len(patterns) == len(set(patterns))


def test_parse_file_reports_the_path(tmp_path):
    f = tmp_path / "server.xml"
    f.write_text('<Server className="%sServer" port="x"/>' % D)
    with pytest.raises(ConfigError) as err:
        Digester().parse_file(f)
    assert str(err.value).startswith("%s:1 <Server>" % f)
    with pytest.raises(ConfigError, match="cannot read"):
        Digester().parse_file(tmp_path / "missing.xml")


def test_entities_are_refused_internal_ones_too(tmp_path):
    # tests/startup/test_xml_hardening.py has the XXE cases over files, the CLI and a real node
    xml = ('<?xml version="1.0"?>\n<!DOCTYPE Server [<!ENTITY p "8123">]>\n'
           '<Server className="%sServer" port="&p;"/>') % D
    with pytest.raises(ConfigError, match=r"^server.xml: the DOCTYPE declares the entity p"):
        digest(xml)
    # positive control: the same document without the DOCTYPE
    server, _ = digest('<Server className="%sServer" port="8123"/>' % D)
    assert server.port == 8123


def test_parameter_needs_name_and_value():
    xml = '<Context className="%sContext">\n<Parameter name="x"/></Context>' % D
    with pytest.raises(ConfigError, match=r"server.xml:2 .*<Parameter> needs the attribute value"):
        digest(xml)
