"""pycat.testing's pure parts: held ports across processes, server.xml isolation, the cookie jar."""
import os
import signal
import subprocess
import sys

import pytest

from pycat.testing import client, serverxml
from pycat.testing.ports import PortRegistry

HOLDER = """
import sys
from pycat.testing import ports
got = [ports.free_port() for _ in range(int(sys.argv[1]))]
print(" ".join(map(str, got)), flush=True)
sys.stdin.read()            # hold them until told
"""


def _holder(tmp_path, count, low, high):
    env = dict(os.environ, PYCAT_TEST_LOCK_DIR=str(tmp_path), PYCAT_TEST_PORTS="%d-%d" % (low, high))
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(count)], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


@pytest.mark.timeout(60)
def test_held_ports_are_unique_across_processes_and_freed_when_the_holder_dies(tmp_path):
    low, high = 29000, 29089
    a, b = _holder(tmp_path, 30, low, high), _holder(tmp_path, 30, low, high)
    try:
        ports_a = set(map(int, a.stdout.readline().split()))
        ports_b = set(map(int, b.stdout.readline().split()))
        assert len(ports_a) == len(ports_b) == 30
        assert not ports_a & ports_b
        assert all(low <= p <= high for p in ports_a | ports_b)
        # this process, with the same lock file, cannot take a port A holds...
        mine = PortRegistry(low, high, lock_path=str(tmp_path / ("pycat-testing-%d" % os.getuid()) / "ports.lock"))
        held = min(ports_a)
        assert not mine._try_lock(held)
        # ...and can once A is gone, however it went (SIGKILL: no cleanup code ran)
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        assert mine._try_lock(held)
        assert held not in ports_b
        os.close(mine._fd)
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


STOCK_LIKE = """<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment before the root stays out of the way -->
<Server port="8005" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="8080" protocol="HTTP/1.1" redirectPort="8443"/>
    <!-- <Connector port="8443" protocol="HTTP/1.1" SSLEnabled="true"/> -->
    <Connector protocol="AJP/1.3" address="::1" port="8009" secret="s"/>
    <Engine name="Catalina" defaultHost="localhost">
      <Cluster className="org.apache.catalina.ha.tcp.SimpleTcpCluster">
        <Channel className="org.apache.catalina.tribes.group.GroupChannel">
          <Membership className="org.apache.catalina.tribes.membership.McastService" address="228.0.0.4" port="45564"/>
          <Receiver className="org.apache.catalina.tribes.transport.nio.NioReceiver" address="auto" port="4000"/>
        </Channel>
      </Cluster>
      <Host name="localhost" appBase="apps"/>
    </Engine>
  </Service>
</Server>
"""


def test_isolate_gives_every_literal_port_a_held_one_and_binds_loopback():
    taken = iter(range(20001, 20100))
    root = serverxml.parse(STOCK_LIKE)
    mapped = serverxml.isolate(root, lambda: next(taken), group="228.9.9.9", shared_port=30000)
    text = serverxml.serialize(root)
    assert set(mapped) == {8005, 8080, 8009, 4000}
    assert len(set(mapped.values())) == 4
    assert root.get("port") == str(mapped[8005])
    http, ajp = root.iter("Connector")
    assert http.get("port") == str(mapped[8080]) and http.get("address") == "127.0.0.1"
    assert ajp.get("address") == "::1"                      # an explicit address is the test's choice
    membership, receiver = root.find(".//Membership"), root.find(".//Receiver")
    assert (membership.get("address"), membership.get("port"), membership.get("bind")) == ("228.9.9.9", "30000", "127.0.0.1")
    assert receiver.get("address") == "127.0.0.1" and receiver.get("port") == str(mapped[4000])
    # comments are kept, and nothing inside them was touched
    assert '<!-- <Connector port="8443" protocol="HTTP/1.1" SSLEnabled="true"/> -->' in text
    assert serverxml.http_connector_port(root, {}) == mapped[8080]
    assert serverxml.app_base(root) == "apps"


def test_fragments_attributes_and_port_placeholders():
    root = serverxml.parse(serverxml.DEFAULT_SERVER_XML)
    serverxml.add_fragments(root, {"service": '<Connector port="${ajp.port}" protocol="AJP/1.3"/>',
                                   "host": '<Valve className="x.Y"/><!-- why --><Valve className="x.Z"/>'})
    serverxml.set_attributes(root, {"engine": {"backgroundProcessorDelay": "3"}})
    service = root.find("Service")
    assert [c.tag for c in service] == ["Connector", "Connector", "Engine"]      # before the Engine
    assert [v.get("className") for v in root.iter("Valve")][-2:] == ["x.Y", "x.Z"]
    assert root.find(".//Engine").get("backgroundProcessorDelay") == "3"
    text = serverxml.serialize(root)
    assert serverxml.port_properties(text) == ["shutdown.port", "http.port", "ajp.port"]
    assert serverxml.http_connector_port(root, {"http.port": "1234"}) == 1234
    with pytest.raises(ValueError, match="no <Cluster>"):
        serverxml.add_fragments(root, {"cluster": "<Valve/>"})


def test_cookie_jar_follows_paths_and_deletions():
    user = client.Client(name="u")
    set_app = client.Response(200, "OK", [("Set-Cookie", "JSESSIONID=abc.node1; Path=/app; HttpOnly"),
                                          ("Set-Cookie", "theme=dark; Path=/")], b"")
    user._store(set_app, "/app/x")
    assert user.session_id == "abc.node1" and user.route == "node1"
    assert user.cookie_header("/app/cart") == "JSESSIONID=abc.node1; theme=dark"
    assert user.cookie_header("/application") == "theme=dark"         # not under /app
    other = client.Response(200, "OK", [("Set-Cookie", "JSESSIONID=zzz.node2; Path=/other")], b"")
    user._store(other, "/other")
    assert user.cookie("JSESSIONID", "/app") == "abc.node1" and user.cookie("JSESSIONID", "/other") == "zzz.node2"
    gone = client.Response(200, "OK", [("Set-Cookie", "JSESSIONID=; Path=/app; Max-Age=0"),
                                       ("Set-Cookie", 'theme=""; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT')], b"")
    user._store(gone, "/app")
    assert user.cookie_header("/app/cart") is None
    assert user.session_id == "zzz.node2"
