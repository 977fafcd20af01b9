"""`pycat war` and `pycat deploy/undeploy/list` against a real running node (a subprocess)."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from real_node import real_node  # noqa: F401 (a fixture)

from deploy_helpers import app_files, write_folder, write_war
from pycat.testing.node import HOME


def war(*args):
    return subprocess.run([sys.executable, "-m", "pycat", "war", *args], cwd=HOME, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.timeout(120)
def test_war_deploy_list_undeploy_on_a_running_node(tmp_path, real_node):
    node = real_node().start()
    assert oct(os.stat(node.token_path).st_mode & 0o777) == "0o600"

    src = write_folder(tmp_path / "src" / "shop", app_files("cli", "c"))
    built = war(src, "-o", str(tmp_path / "shop.war"))
    assert built.returncode == 0, built.stderr
    assert "Wrote" in built.stdout and os.path.isfile(tmp_path / "shop.war")

    deployed = node.cli("deploy", str(tmp_path / "shop.war"), "--name", "shop##3")
    assert deployed.returncode == 0, deployed.stderr + deployed.stdout
    assert "deployed /shop##3" in deployed.stdout
    assert node.body("/shop/hello") == (200, "cli c more-c")
    # a folder is deployed too (the CLI packs it); redeploying the same name replaces it
    src2 = write_folder(tmp_path / "src2" / "shop", app_files("cli2", "c"))
    again = node.cli("deploy", src2, "--name", "shop##3")
    assert again.returncode == 0, again.stderr
    assert node.body("/shop/hello") == (200, "cli2 c more-c")

    listed = node.cli("list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "OK - Listed applications"
    assert any(line.startswith("/shop##3:running:0:") for line in lines), lines
    assert any(line.startswith("/:running:") for line in lines), lines

    bad = node.cli("undeploy", "/nothere")
    assert bad.returncode != 0 and "no application /nothere" in bad.stderr
    gone = node.cli("undeploy", "/shop##3")
    assert gone.returncode == 0, gone.stderr
    assert node.status("/shop/hello") == 404
    assert sorted(os.listdir(node.webapps)) == ["ROOT"]

    # a wrong token is refused
    with open(node.token_path) as fh:
        info = json.load(fh)
    with socket.create_connection(("127.0.0.1", info["port"]), timeout=5) as sock:
        sock.sendall(b'{"token": "nope", "cmd": "list"}\n')
        reply = json.loads(sock.makefile().readline())
    assert reply == {"ok": False, "error": "bad token"}
    assert node.stop() == 0
    assert not os.path.exists(node.token_path)


@pytest.mark.timeout(120)
def test_running_node_picks_up_dropped_war_replaced_war_and_deleted_war(real_node):
    node = real_node('maxExpandedSize="100000"').start()
    webapps = node.webapps
    t0 = time.monotonic()
    dropped = write_war(os.path.join(webapps, "drop.war"), app_files("d1", "d"))
    node.wait_until(lambda: node.body("/drop/hello") == (200, "d1 d more-d"), 10, "deployed")
    # the 0.2 s backgroundProcessorDelay is used (Tomcat's default 10 s would fail this); headroom for a loaded CI box
    assert time.monotonic() - t0 < 5.0
    write_war(dropped, app_files("d2", "d"))
    st = os.stat(dropped)
    os.utime(dropped, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    node.wait_until(lambda: node.body("/drop/hello") == (200, "d2 d more-d"), 10, "redeployed")
    write_war(os.path.join(webapps, "huge.war"), app_files("h", "h", extra={"big.bin": b"\0" * 200000}))
    os.unlink(dropped)
    node.wait_until(lambda: node.status("/drop/hello") == 404, 10, "undeployed")
    node.wait_until(lambda: not os.path.exists(os.path.join(webapps, "drop")), 10, "folder removed")
    node.wait_until(lambda: "maxExpandedSize" in node.log(), 10, "oversized WAR refused")
    assert "deploying /huge from" in node.log() and "undeploying context /drop" in node.log()
    assert node.status("/huge/hello") == 404
    assert not os.path.exists(os.path.join(webapps, "huge"))
