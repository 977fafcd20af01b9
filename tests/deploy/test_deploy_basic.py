"""Deploying folders and WARs on a running Host; redeploy; undeploy; isolation."""
import os
import sys

import pytest

from deploy_helpers import Node, app_files, bump_mtime, write_folder, write_war


@pytest.fixture
def node(tmp_path):
    n = Node(tmp_path)
    yield n
    n.stop()


@pytest.mark.timeout(60)
def test_folder_and_war_dropped_while_running_are_served_after_check(node):
    assert node.get("/one/hello")[0] == 404
    write_folder(os.path.join(node.app_base, "one"), app_files(1, "one"))
    write_war(os.path.join(node.app_base, "two.war"), app_files(2, "two"))
    node.config.check()
    assert node.body("/one/hello") == (200, "1 one more-one")
    # a new WAR must be unchanged over two checks before it is deployed
    assert node.get("/two/hello")[0] == 404
    node.config.check()
    assert node.body("/two/hello") == (200, "2 two more-two")
    assert os.path.isfile(os.path.join(node.app_base, "two", "WEB-INF", "classes", "app.py"))
    assert node.body("/two/") == (200, "static 2\n")
    assert "app" not in sys.modules and "utils" not in sys.modules


@pytest.mark.timeout(60)
def test_replace_war_runs_new_code_and_drops_old_modules(node):
    war = write_war(os.path.join(node.app_base, "shop.war"), app_files(1, "v1"))
    node.config.check(), node.config.check()
    assert node.body("/shop/hello") == (200, "1 v1 more-v1")
    old_ctx = node.host.find_child("/shop")
    old_prefix = old_ctx.loader.prefix
    old_modules = [k for k in sys.modules if k.startswith(old_prefix + ".")]
    assert {old_prefix + ".app", old_prefix + ".utils", old_prefix + ".utils.more"} <= set(old_modules)
    write_war(war, app_files(2, "v2"))
    bump_mtime(war)
    node.config.check()
    assert node.body("/shop/hello") == (200, "1 v1 more-v1")     # not stable yet: old serves
    node.config.check()
    assert node.body("/shop/hello") == (200, "2 v2 more-v2")
    new_ctx = node.host.find_child("/shop")
    assert new_ctx is not old_ctx and not old_ctx.state.available
    assert new_ctx.loader.prefix != old_prefix
    assert not [k for k in sys.modules if k == old_prefix or k.startswith(old_prefix + ".")]


@pytest.mark.timeout(60)
def test_delete_war_undeploys_and_removes_folder(node):
    war = write_war(os.path.join(node.app_base, "gone.war"), app_files(1, "g"))
    node.config.check(), node.config.check()
    assert node.body("/gone/hello")[0] == 200
    prefix = node.host.find_child("/gone").loader.prefix
    os.unlink(war)
    node.config.check()
    assert node.get("/gone/hello")[0] == 404
    assert not os.path.exists(os.path.join(node.app_base, "gone"))
    assert not [k for k in sys.modules if k == prefix or k.startswith(prefix + ".")]
    assert node.host.find_child("/gone") is None


@pytest.mark.timeout(60)
def test_two_apps_with_the_same_module_names(node):
    write_folder(os.path.join(node.app_base, "a"), app_files("A", "alpha"))
    write_folder(os.path.join(node.app_base, "b"), app_files("B", "beta"))
    node.config.check()
    for _ in range(3):
        assert node.body("/a/hello") == (200, "A alpha more-alpha")
        assert node.body("/b/hello") == (200, "B beta more-beta")
    assert "utils" not in sys.modules and "app" not in sys.modules


@pytest.mark.timeout(60)
def test_background_tick_deploys_within_two_ticks(tmp_path):
    import gevent
    node = Node(tmp_path, tick=0.2)
    try:
        write_war(os.path.join(node.app_base, "tick.war"), app_files(7, "t"))
        write_folder(os.path.join(node.app_base, "dir"), app_files(8, "d"))
        t0 = gevent.get_hub().loop.now()
        node.wait_body("/tick/hello", "7 t more-t", timeout=5)
        node.wait_body("/dir/hello", "8 d more-d", timeout=5)
        assert gevent.get_hub().loop.now() - t0 < 0.2 * 2 + 0.5
    finally:
        node.stop()


@pytest.mark.timeout(60)
def test_context_names_root_nested_and_deploy_ignore(tmp_path):
    node = Node(tmp_path, deploy_ignore=r"skip.*")
    try:
        write_folder(os.path.join(node.app_base, "ROOT"), app_files("root", "r"))
        write_folder(os.path.join(node.app_base, "a#b"), app_files("ab", "n"))
        write_folder(os.path.join(node.app_base, "skipme"), app_files("s", "s"))
        node.config.check()
        assert node.body("/hello") == (200, "root r more-r")
        assert node.body("/a/b/hello") == (200, "ab n more-n")
        assert node.get("/skipme/hello")[0] == 404
    finally:
        node.stop()


@pytest.mark.timeout(60)
def test_deploy_on_startup_deploys_existing_wars_at_once(tmp_path):
    os.makedirs(tmp_path / "webapps")
    write_war(os.path.join(tmp_path, "webapps", "early.war"), app_files(3, "e"))
    node = Node(tmp_path)
    try:
        assert node.body("/early/hello") == (200, "3 e more-e")
    finally:
        node.stop()
    # a restart with the WAR unchanged reuses the expanded folder (war-tracker)
    marker = os.path.join(tmp_path, "webapps", "early", "marker.txt")
    with open(marker, "w") as fh:
        fh.write("kept")
    node = Node(tmp_path)
    try:
        assert node.body("/early/marker.txt") == (200, "kept")
    finally:
        node.stop()


@pytest.mark.timeout(60)
def test_descriptor_in_conf_deploys_an_external_folder(tmp_path):
    ext = write_folder(tmp_path / "outside" / "svc", app_files("ext", "x"))
    conf = tmp_path / "conf" / "Catalina" / "localhost"
    conf.mkdir(parents=True)
    (conf / "api#v1.xml").write_text('<Context docBase="%s"/>' % ext)
    node = Node(tmp_path)
    try:
        assert node.body("/api/v1/hello") == (200, "ext x more-x")
        (conf / "api#v1.xml").unlink()
        node.config.check()
        assert node.get("/api/v1/hello")[0] == 404
        assert os.path.isdir(ext)       # an external docBase is never deleted
    finally:
        node.stop()
