"""A WAR or --name whose context path has an empty, "." or ".." segment (or a separator or NUL) is
refused with a clear reason, and never makes the deployer remove anything outside appBase: on a
real node, ``#..war`` once removed all of webapps/ and ``#...war`` the whole CATALINA_BASE."""
import os

import pytest

from real_node import real_node  # noqa: F401 (a fixture)

from deploy_helpers import app_files, write_war
from pycat.startup.manager_api import call


def base_files(node):
    """What must survive: the node's configuration, its ROOT app and its work folder."""
    return [os.path.join(node.base, "conf", "server.xml"), os.path.join(node.webapps, "ROOT", "index.html"),
            os.path.join(node.base, "work")]


@pytest.mark.timeout(120)
def test_dropped_wars_with_dot_names_are_refused_and_the_base_survives(real_node):
    node = real_node().start()
    bad = ["#..war", "#...war", "#.war", "a#..#b.war", "x#.war"]
    for name in bad:
        write_war(os.path.join(node.webapps, name), app_files("bad", "b"))
    # positive control: a good WAR dropped in the same tick is deployed past them
    write_war(os.path.join(node.webapps, "good.war"), app_files("g", "g"))
    node.wait_until(lambda: not node.alive or node.status("/good/hello") == 200, 20, "good.war")
    assert node.alive
    for path in base_files(node):
        assert os.path.exists(path), path
    assert node.get("/").text == "hello from pycat\n"
    log = node.log()
    for name in bad:
        assert "%s: invalid context name" % name in log, log
    # refused before anything was written: the WARs stay as the user left them, nothing else appeared
    assert sorted(os.listdir(node.webapps)) == sorted(["ROOT", "good", "good.war"] + bad)
    # refused once, not on every tick: a WAR dropped now needs two more ticks to be deployed
    write_war(os.path.join(node.webapps, "later.war"), app_files("l", "l"))
    node.wait_until(lambda: node.status("/later/hello") == 200, 20, "later.war")
    assert node.log().count("#...war: invalid context name") == 1


@pytest.mark.timeout(180)
def test_deploy_with_a_dot_name_is_refused_with_a_clear_error(tmp_path, real_node):
    node = real_node().start()
    war = write_war(str(tmp_path / "app.war"), app_files("n", "n"))
    for name in ("/..", "..", "/.", "#..", "/a/../b", "/a//b", "a/", "app##../../x", "app##a/b", "/a\\b"):
        result = node.cli("deploy", war, "--name", name)
        assert result.returncode != 0, (name, result.stdout)
        assert "invalid context name" in result.stderr, (name, result.stderr)
        assert node.alive
        for path in base_files(node):
            assert os.path.exists(path), (name, path)
        assert sorted(os.listdir(node.webapps)) == ["ROOT"], name
    # a NUL can only come through the channel itself (argv cannot carry one)
    reply = call(node.base, {"cmd": "deploy", "war": war, "name": "app\x00x"})
    assert reply["ok"] is False and "invalid context name" in reply["error"], reply
    assert "invalid context name" in node.log()
    # positive control: the same WAR under a proper name deploys
    ok = node.cli("deploy", war, "--name", "a#b##2")
    assert ok.returncode == 0, ok.stderr
    status, body = node.body("/a/b/hello")
    assert (status, body) == (200, "n n more-n")
    assert sorted(os.listdir(node.webapps)) == ["ROOT", "a#b##2", "a#b##2.war"]


@pytest.mark.timeout(60)
def test_the_deployer_removes_nothing_outside_its_folders_even_when_handed_a_bad_name(tmp_path):
    # the second line of defence, under the name check: HostConfig called directly
    from deploy_helpers import LogCapture, Node
    from pycat.webapp.war import ContextName
    node = Node(tmp_path)
    try:
        keep = [tmp_path / "keep.txt", tmp_path / "webapps" / "other" / "index.html"]
        for path in keep:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("keep")
        war = write_war(str(tmp_path / "x.war"), app_files("x", "x"))
        with LogCapture() as logs:
            for path in ("/..", "/."):
                assert node.config.deploy_war(ContextName(path), war) is None
        assert "is not inside" in logs.text
        assert all(path.read_text() == "keep" for path in keep)
        # positive control: a proper name deploys from the same WAR...
        assert node.config.deploy_war(ContextName("/fine"), war) is not None
        assert node.body("/fine/hello") == (200, "x x more-x")
        # ...and an app whose folder somehow points at the base is undeployed without removing it
        app = node.config.apps["/fine"]
        app.folder = str(tmp_path)
        with LogCapture() as logs:
            node.config.undeploy(app, remove_files=True)
        assert node.get("/fine/hello")[0] == 404
        assert "Refusing to remove %s" % tmp_path in logs.text
        assert all(path.read_text() == "keep" for path in keep)
    finally:
        node.stop()
