"""Descriptors, external WARs, unpackWARs=false, retry after a fix, a removed expanded folder."""
import os
import shutil

import pytest

from deploy_helpers import LogCapture, Node, app_files, bump_mtime, write_folder, write_war


@pytest.mark.timeout(60)
def test_descriptor_with_external_war_redeploys_on_descriptor_change(tmp_path):
    (tmp_path / "store").mkdir()
    war = write_war(tmp_path / "store" / "ext.war", app_files(1, "ext"))
    conf = tmp_path / "conf" / "Catalina" / "localhost"
    conf.mkdir(parents=True)
    xml = conf / "ext.xml"
    xml.write_text('<Context docBase="%s" reloadable="false"/>' % war)
    node = Node(tmp_path)
    try:
        assert node.body("/ext/hello") == (200, "1 ext more-ext")
        first = node.host.find_child("/ext")
        assert os.path.isdir(os.path.join(node.app_base, "ext"))     # expanded into appBase
        xml.write_text('<Context docBase="%s" reloadable="true"/>' % war)
        bump_mtime(str(xml))
        node.config.check()
        second = node.host.find_child("/ext")
        assert second is not first and second.reloadable
        assert node.body("/ext/hello") == (200, "1 ext more-ext")
        # the external WAR changes: redeployed from it
        write_war(war, app_files(2, "ext"))
        bump_mtime(war, 3)
        node.config.check(), node.config.check()
        assert node.body("/ext/hello") == (200, "2 ext more-ext")
        # descriptor removed: undeployed, the expanded copy in appBase removed, the WAR kept
        xml.unlink()
        node.config.check()
        assert node.get("/ext/hello")[0] == 404
        assert not os.path.exists(os.path.join(node.app_base, "ext")) and os.path.isfile(war)
        node.config.check()
        assert node.get("/ext/hello")[0] == 404
    finally:
        node.stop()


@pytest.mark.timeout(60)
def test_failed_folder_is_retried_once_fixed(tmp_path):
    node = Node(tmp_path)
    try:
        folder = write_folder(os.path.join(node.app_base, "fixme"),
                              app_files(1, "f", extra={"WEB-INF/web.xml": "<web-app><oops>"}))
        with LogCapture() as logs:
            node.config.check()
            node.config.check()
        assert logs.text.count("deploying /fixme from") == 1      # logged once, not every tick
        write_folder(folder, {"WEB-INF/web.xml": app_files(1, "f")["WEB-INF/web.xml"]})
        bump_mtime(os.path.join(folder, "WEB-INF", "web.xml"))
        node.config.check()
        assert node.body("/fixme/hello") == (200, "1 f more-f")
    finally:
        node.stop()


@pytest.mark.timeout(60)
def test_removed_expanded_folder_is_expanded_again(tmp_path):
    node = Node(tmp_path)
    try:
        write_war(os.path.join(node.app_base, "re.war"), app_files(1, "re"))
        node.config.check(), node.config.check()
        shutil.rmtree(os.path.join(node.app_base, "re"))
        node.config.check(), node.config.check()
        assert node.body("/re/") == (200, "static 1\n")
        assert node.body("/re/hello") == (200, "1 re more-re")
    finally:
        node.stop()


@pytest.mark.timeout(60)
def test_unpack_wars_false_expands_under_work(tmp_path):
    node = Node(tmp_path, unpack_wars=False)
    try:
        with LogCapture() as logs:
            write_war(os.path.join(node.app_base, "packed.war"), app_files(1, "p"))
            node.config.check(), node.config.check()
        assert node.body("/packed/hello") == (200, "1 p more-p")
        assert "not supported" in logs.text
        assert sorted(os.listdir(node.app_base)) == ["packed.war"]
        assert os.path.isdir(os.path.join(str(tmp_path), "work", "Catalina", "localhost", "packed"))
    finally:
        node.stop()
