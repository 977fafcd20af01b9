"""The CLI's configtest / version, node defaults, shutdown settings and ${} from files and -D."""
import os

import pytest
from click.testing import CliRunner

from pycat.cli import main
from pycat.startup import control
from pycat.startup.catalina import Catalina

D = "startup_dummies:"

XML = """<Server className="{d}Server" port="${{shut:-8005}}" shutdown="${{cmd:-SHUTDOWN}}">
  <Service className="{d}Service" name="${{svc}}">
    <Connector className="{d}Connector" port="${{http.port}}" {extra}/>
  </Service>
</Server>
"""


def make_base(tmp_path, extra="", props=None):
    conf = tmp_path / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "server.xml").write_text(XML.format(d=D, extra=extra))
    if props is not None:
        (conf / "catalina.properties").write_text(props)
    return tmp_path


def configtest(base, *args, env=None):
    runner = CliRunner()  # click >= 8.2: output holds stdout and stderr as a terminal shows them
    env = dict({"CATALINA_BASE": str(base), "CATALINA_HOME": str(base), "JAVA_OPTS": "", "CATALINA_OPTS": ""},
               **(env or {}))
    return runner.invoke(main, ["configtest", *args], env=env)


def test_properties_from_catalina_properties_and_defines(tmp_path):
    base = make_base(tmp_path, props="svc=Catalina\nhttp.port = 18080\n")
    catalina = Catalina(base, base)
    server = catalina.load()
    service = server.calls[0][1]
    assert service.name == "Catalina" and service.calls[0][1].port == 18080
    assert server.catalina_base == str(base) and server.port == 8005
    # -D wins over the file
    server = Catalina(base, base, [("http.port", "19090"), ("shut", "-1")]).load()
    assert server.calls[0][1].calls[0][1].port == 19090 and server.port == -1


def test_catalina_base_and_home_are_properties(tmp_path):
    base = make_base(tmp_path, props="svc=${catalina.base}/x\nhttp.port=1\n")
    server = Catalina(base, "/opt/home").load()
    assert server.calls[0][1].name == "%s/x" % base


def test_configtest_ok_and_warnings(tmp_path):
    base = make_base(tmp_path, extra='bogus="1"', props="svc=S\nhttp.port=1\n")
    result = configtest(base)
    assert result.exit_code == 0, result.output
    assert "Configuration OK" in result.output and "(1 warning)" in result.output
    assert "failed to set property [bogus] to [1]" in result.output
    strict = configtest(base, "--strict")
    assert strict.exit_code == 1
    assert "[bogus]" in strict.output


def test_configtest_bad_type_and_define(tmp_path):
    base = make_base(tmp_path, props="svc=S\n")
    bad = configtest(base, "-Dhttp.port=80a")
    text = bad.output
    assert bad.exit_code == 1 and "server.xml:3" in text and "80a" in text
    good = configtest(base, "-Dhttp.port=8081")
    assert good.exit_code == 0
    # Tomcat habit: -D entries in JAVA_OPTS / CATALINA_OPTS
    assert configtest(base, env={"CATALINA_OPTS": "-Xmx1g -Dhttp.port=8082"}).exit_code == 0


def test_version_command():
    result = CliRunner().invoke(main, ["version"])
    assert result.exit_code == 0 and "Server version:" in result.output and "pycat/" in result.output


def test_node_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    node = control.Node(env={})
    assert node.base == node.home == control.INSTALL_DIR  # no conf/ here: the install
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "server.xml").write_text("<Server/>")
    node = control.Node(env={})
    assert node.base == str(tmp_path) and node.config == str(tmp_path / "conf" / "server.xml")
    assert node.pid_file == str(tmp_path / "logs" / "catalina.pid")
    assert node.out_file == str(tmp_path / "logs" / "catalina.out")
    node = control.Node(env={"CATALINA_HOME": "/h"})
    assert node.base == "/h"
    node = control.Node(env={"CATALINA_BASE": "/b", "CATALINA_PID": "/run/p.pid", "CATALINA_OUT": "/tmp/o"},
                        config="other.xml")
    assert (node.base, node.pid_file, node.out_file, node.config) == ("/b", "/run/p.pid", "/tmp/o", "/b/other.xml")


def test_shutdown_settings(tmp_path):
    f = tmp_path / "server.xml"
    f.write_text('<!-- c --><Server port="${p:-8005}" portOffset="10" shutdown="BYE" address="127.0.0.1"/>')
    assert control.shutdown_settings(str(f), {}) == (8015, "127.0.0.1", "BYE")
    assert control.shutdown_settings(str(f), {"p": "-1"}) == (-1, "127.0.0.1", "BYE")
    f.write_text('<Server port="x"/>')
    with pytest.raises(Exception, match="not a number"):
        control.shutdown_settings(str(f), {})


def test_pid_file_helpers(tmp_path):
    pid_file = str(tmp_path / "logs" / "x.pid")
    assert control.read_pid(pid_file) is None
    control.write_pid(pid_file, os.getpid())
    assert control.read_pid(pid_file) == os.getpid() and control.is_alive(os.getpid())
    control.remove_pid(pid_file, only_if=1)
    assert os.path.exists(pid_file)
    control.remove_pid(pid_file, only_if=os.getpid())
    assert not os.path.exists(pid_file)
    assert not control.is_alive(2 ** 22 + 12345)


def test_the_shipped_conf_loads_strictly_with_the_real_classes():
    home = control.INSTALL_DIR
    catalina = Catalina(home, home)
    server = catalina.load(os.path.join(home, "conf", "server.xml"), strict=True)
    assert type(server).__name__ == "Server" and server.port == 8005
    assert catalina.warnings == []
    server = Catalina(home, home, [("http.port", "18080"), ("shutdown.port", "-1")]).load(strict=True)
    assert server.port == -1


DESCRIBED = """<Server port="-1">
  <Listener className="org.apache.catalina.core.AprLifecycleListener"/>
  <Service name="S">
    <Connector port="${http.port:-8080}"/>
    <Engine name="E" defaultHost="localhost">
      <Host name="localhost" appBase="webapps">
        <Valve className="org.apache.catalina.valves.RemoteAddrValve" allow="127\\.0\\.0\\.1"/>
        <Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster">
          <Channel className="org.apache.catalina.tribes.group.GroupChannel">
            <Membership className="org.apache.catalina.tribes.membership.McastService"/>
          </Channel>
        </Cluster>
      </Host>
    </Engine>
  </Service>
</Server>
"""


def test_configtest_describe_prints_every_element_and_its_declared_attributes(tmp_path):
    from pycat.attrs import configurable_attrs
    from pycat.connector.connector import Connector
    from pycat.tribes.membership.mcast import McastService

    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "server.xml").write_text(DESCRIBED)
    result = configtest(tmp_path, "--describe")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    heads = [line for line in lines if line.startswith("<")]
    # every element that became an object, in document order, with its line and resolved class
    assert heads == [
        "<Server> line 1: pycat.core.server.Server",
        "<Server/Listener> line 2: pycat.core.listeners.NoopListener",
        "<Server/Service> line 3: pycat.core.service.Service",
        "<Server/Service/Connector> line 4: pycat.connector.connector.Connector",
        "<Server/Service/Engine> line 5: pycat.core.engine.Engine",
        "<Server/Service/Engine/Host> line 6: pycat.core.host.Host",
        "<Server/Service/Engine/Host/Valve> line 7: pycat.valves.remote_addr.RemoteAddrValve",
        "<Server/Service/Engine/Host/Cluster> line 8: pycat.ha.cluster.SimpleTcpCluster",
        "<Server/Service/Engine/Host/Cluster/Channel> line 9: pycat.tribes.group.group_channel.GroupChannel",
        "<Server/Service/Engine/Host/Cluster/Channel/Membership> line 10: pycat.tribes.membership.mcast.McastService",
    ]

    def rows_of(head):
        start = lines.index(head) + 1
        rows = []
        for line in lines[start:]:
            if not line.startswith("    "):
                break
            rows.append(line.split(None, 3))
        return rows

    connector = rows_of(heads[3])
    # name, type, default (as written in server.xml) and the declaration's documentation line
    assert ["port", "int", "8080", Connector.port.doc] in connector
    assert ["secure", "bool", "false", Connector.secure.doc] in connector
    assert ["address", "str", "-", Connector.address.doc] in connector
    # each declared attribute once, none invented
    declared = {a.xml_name for a in configurable_attrs(Connector).values()}
    assert sorted(r[0] for r in connector) == sorted(declared)
    # other XML names an attribute accepts are shown with it
    mcast = rows_of(heads[9])
    assert ["address", "str", "228.0.0.4", McastService.address.doc + " (also: mcastAddr)"] in mcast
    assert ["allow", "compile", "-"] == rows_of(heads[6])[0][:3]     # a converter shows its name
    # a class that declares nothing says so, and whether it takes any attribute anyway
    assert lines[lines.index(heads[1]) + 1].strip() == \
        "(no declared attributes; takes any attribute as a property)"
    assert lines[-1].startswith("Configuration OK")
    # positive control: without the flag, configtest prints none of it
    plain = configtest(tmp_path)
    assert plain.exit_code == 0 and not any(line.startswith("<") for line in plain.output.splitlines())


def test_declared_types_are_named_for_users():
    from pycat.attrs import type_name

    def parse_send_options(text):
        return text

    def _regex(text):
        return text
    _regex.label = "regex"
    assert [type_name(t) for t in (int, bool, str, float, list)] == ["int", "bool", "str", "float", "list"]
    assert (type_name(parse_send_options), type_name(_regex)) == ("send_options", "regex")
