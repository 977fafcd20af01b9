"""`pycat war` and `pycat deploy/undeploy/list` against a real running node (a subprocess)."""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from node_helpers import Procs, free_port, http_get, make_base, node_env, pycat_cmd, wait_until  # noqa: E402

from deploy_helpers import app_files, write_folder  # noqa: E402


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.cleanup()


def cli(base, *args):
    result = subprocess.run(pycat_cmd(*args, "--base", str(base)) if args[0] not in ("war",) else pycat_cmd(*args),
                            env=node_env(base), capture_output=True, text=True, timeout=60)
    return result


@pytest.mark.timeout(120)
def test_war_deploy_list_undeploy_on_a_running_node(tmp_path, procs):
    port = free_port()
    base = make_base(tmp_path / "node", port)
    proc = procs.popen(pycat_cmd("run", "--base", base), env=node_env(base),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: http_get(port, "/"), timeout=30, message="node up")
    token_file = os.path.join(base, "work", "pycat-manager.json")
    wait_until(lambda: os.path.exists(token_file), message="deploy channel")
    assert oct(os.stat(token_file).st_mode & 0o777) == "0o600"

    src = write_folder(tmp_path / "src" / "shop", app_files("cli", "c"))
    built = cli(base, "war", src, "-o", str(tmp_path / "shop.war"))
    assert built.returncode == 0, built.stderr
    assert "Wrote" in built.stdout and os.path.isfile(tmp_path / "shop.war")

    deployed = cli(base, "deploy", str(tmp_path / "shop.war"), "--name", "shop##3")
    assert deployed.returncode == 0, deployed.stderr + deployed.stdout
    assert "deployed /shop##3" in deployed.stdout
    assert http_get(port, "/shop/hello") == (200, b"cli c more-c")
    # a folder is deployed too (the CLI packs it); redeploying the same name replaces it
    src2 = write_folder(tmp_path / "src2" / "shop", app_files("cli2", "c"))
    again = cli(base, "deploy", src2, "--name", "shop##3")
    assert again.returncode == 0, again.stderr
    assert http_get(port, "/shop/hello") == (200, b"cli2 c more-c")

    listed = cli(base, "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "OK - Listed applications"
    assert any(line.startswith("/shop##3:running:0:") for line in lines), lines
    assert any(line.startswith("/:running:") for line in lines), lines

    bad = cli(base, "undeploy", "/nothere")
    assert bad.returncode != 0 and "no application /nothere" in bad.stderr
    gone = cli(base, "undeploy", "/shop##3")
    assert gone.returncode == 0, gone.stderr
    assert http_get(port, "/shop/hello")[0] == 404
    app_base = os.path.join(base, "webapps")
    assert sorted(os.listdir(app_base)) == ["ROOT"]

    # a wrong token is refused
    with open(token_file) as fh:
        info = json.load(fh)
    import socket
    with socket.create_connection(("127.0.0.1", info["port"]), timeout=5) as sock:
        sock.sendall(b'{"token": "nope", "cmd": "list"}\n')
        reply = json.loads(sock.makefile().readline())
    assert reply == {"ok": False, "error": "bad token"}
    proc.terminate()
    proc.wait(20)
    assert not os.path.exists(token_file)


TICK_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="${http.port}" address="127.0.0.1" protocol="HTTP/1.1"/>
    <Engine name="Catalina" defaultHost="localhost" backgroundProcessorDelay="0.2">
      <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="true" maxExpandedSize="100000"/>
    </Engine>
  </Service>
</Server>
"""


@pytest.mark.timeout(120)
def test_running_node_picks_up_dropped_war_replaced_war_and_deleted_war(tmp_path, procs):
    import time
    from deploy_helpers import write_war
    port = free_port()
    base = make_base(tmp_path / "node", port, server_xml=TICK_XML)
    log_path = os.path.join(base, "logs", "node.log")
    log_file = open(log_path, "wb")
    proc = procs.popen(pycat_cmd("run", "--base", base), env=node_env(base),
                       stdout=log_file, stderr=subprocess.STDOUT)
    wait_until(lambda: http_get(port, "/"), timeout=30, message="node up")
    webapps = os.path.join(base, "webapps")
    t0 = time.monotonic()
    war = write_war(os.path.join(webapps, "drop.war"), app_files("d1", "d"))
    wait_until(lambda: http_get(port, "/drop/hello") == (200, b"d1 d more-d"), timeout=10, message="deployed")
    # the 0.2 s backgroundProcessorDelay is used (Tomcat's default 10 s would fail this); headroom for a loaded CI box
    assert time.monotonic() - t0 < 5.0
    write_war(war, app_files("d2", "d"))
    st = os.stat(war)
    os.utime(war, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    wait_until(lambda: http_get(port, "/drop/hello") == (200, b"d2 d more-d"), timeout=10, message="redeployed")
    write_war(os.path.join(webapps, "huge.war"), app_files("h", "h", extra={"big.bin": b"\0" * 200000}))
    os.unlink(war)
    wait_until(lambda: http_get(port, "/drop/hello")[0] == 404, timeout=10, message="undeployed")
    wait_until(lambda: not os.path.exists(os.path.join(webapps, "drop")), timeout=10, message="folder removed")

    def logged():
        with open(log_path, errors="replace") as fh:
            return fh.read()
    wait_until(lambda: "maxExpandedSize" in logged(), timeout=10, message="oversized WAR refused")
    assert "deploying /huge from" in logged() and "undeploying context /drop" in logged()
    assert http_get(port, "/huge/hello")[0] == 404
    assert not os.path.exists(os.path.join(webapps, "huge"))
    proc.terminate()
    proc.wait(20)
    log_file.close()
