"""The plugin's fixtures with real nodes, in this process (the plugin is loaded by the project's own
runs too): a node's life (apps, deploy, undeploy, stop, kill, restart), server.xml from a file and
from a marker, and a statically configured BackupManager cluster."""
import os

import pytest
from plugin_project import write_app

from pycat.testing import App

pytestmark = pytest.mark.timeout(120)


def test_a_node_serves_deploys_undeploys_stops_and_restarts(pycat_node, pycat_user, tmp_path):
    app = write_app(str(tmp_path / "counter"))
    node = pycat_node(apps=[app, App(app, name="packed", war=True)])
    assert node.url == "http://127.0.0.1:%d" % node.http_port and node.ports["http"] == node.http_port
    assert os.path.isfile(os.path.join(node.app_base, "packed.war"))           # built like `pycat war`
    user = pycat_user(node)
    assert user.get("/counter/").text == "n=1\n"
    assert user.get("/packed/").text == "n=1\n"                                 # its own session
    assert user.get("/counter/").text == "n=2\n"

    assert node.deploy(app, name="extra##2") == "deployed /extra##2"
    assert user.get("/extra/", expect=200).text == "n=1\n"
    assert {a["name"] for a in node.list_apps()} >= {"/counter", "/packed", "/extra##2"}
    node.undeploy("/extra##2")
    assert user.get("/extra/").status == 404

    # a graceful stop saves the sessions (StandardManager), a restart brings them back
    assert node.stop() == 0 and not node.alive
    assert "Server stopped" in node.log()
    mark = node.mark()
    node.restart()
    assert "Server startup in" in node.log(since=mark)
    assert user.get("/counter/").text == "n=3\n"
    # kill -9 saves nothing: the session is gone after the next start
    assert node.kill() == -9
    node.start()
    assert user.get("/counter/").text == "n=1\n"
    assert node.starts == 3


STOCK_STYLE = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="8005" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="8080" protocol="HTTP/1.1" connectionTimeout="20000"/>
    <Engine name="Catalina" defaultHost="localhost">
      <Host name="localhost" appBase="webapps" autoDeploy="true"/>
    </Engine>
  </Service>
</Server>
"""


@pytest.mark.pycat_xml(host='<Valve className="org.apache.catalina.valves.RemoteAddrValve" allow="10\\.9\\.9\\.9"/>')
def test_server_xml_from_a_file_with_a_marker_fragment(pycat_node, tmp_path):
    path = tmp_path / "server.xml"
    path.write_text(STOCK_STYLE)
    node = pycat_node(server_xml=path, apps=[write_app(str(tmp_path / "counter"))])
    # the literal ports were replaced by free ones, the connector bound to loopback
    assert node.http_port == node.ports["8080"] != 8080 and node.shutdown_port == node.ports["8005"]
    written = open(os.path.join(node.base, "conf", "server.xml")).read()
    assert 'address="127.0.0.1"' in written and "RemoteAddrValve" in written
    # the marker's valve refuses 127.0.0.1; a fragment passed by the test adds up with it
    assert node.get("/counter/").status == 403
    other = pycat_node(server_xml=path, fragments={"host": '<Valve className="org.apache.catalina.valves.AccessLogValve" '
                                                           'directory="logs" prefix="mine" suffix=".txt"/>'})
    assert other.get("/").status == 403
    assert "RemoteAddrValve" in open(os.path.join(other.base, "conf", "server.xml")).read()
    assert any(name.startswith("mine") for name in os.listdir(os.path.join(other.base, "logs")))


def test_a_static_cluster_survives_a_kill(pycat_cluster, pycat_user, tmp_path):
    cluster = pycat_cluster(3, membership="static", send_options=6, apps=[write_app(str(tmp_path / "counter"))])
    assert cluster.group is None            # no multicast at all
    written = open(os.path.join(cluster[0].base, "conf", "server.xml")).read()
    assert "StaticMembershipService" in written and "DeltaManager" in written
    user = pycat_user(cluster[0])
    assert user.get("/counter/").text == "n=1\n"
    owner = cluster.node_for(user)
    assert owner is cluster[0]
    assert cluster.kill(owner) == -9
    survivors = cluster.others(owner)
    assert [n.name for n in survivors] == ["node2", "node3"]
    assert user.get("/counter/", node=survivors[0]).text == "n=2\n"
    assert user.get("/counter/", node=survivors[1]).text == "n=3\n"
    owner.start()
    cluster.wait_members()                  # the new incarnation and the survivors see each other


def test_a_backup_manager_cluster_keeps_one_backup(pycat_cluster, pycat_user, tmp_path):
    cluster = pycat_cluster(2, manager="backup", send_options=6, apps=[write_app(str(tmp_path / "counter"))])
    user = pycat_user(cluster[0])
    assert user.get("/counter/").text == "n=1\n"
    rows = cluster.wait_replicated()["localhost#/counter"]
    assert all(r["class"].endswith("BackupManager") for r in rows)
    assert sorted(tuple(sorted(r["roles"].items())) for r in rows) == [(("backup", 1),), (("primary", 1),)]
    cluster.kill(cluster.node_for(user))
    assert user.get("/counter/", node=cluster[1]).text == "n=2\n"
