"""What an undeploy removes: the app's work folder when it lies in the Host's work folder, never a
workDir configured elsewhere; and a redeploy (no undeploy) keeps it."""
import os

import pytest

from deploy_helpers import LogCapture, Node, app_files, bump_mtime, write_folder, write_war


@pytest.mark.timeout(60)
def test_undeploy_removes_the_default_work_folder_but_not_one_elsewhere(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "work"
    node = Node(tmp_path)
    try:
        write_folder(os.path.join(node.app_base, "mine"), app_files("m", "m"))
        write_folder(os.path.join(node.app_base, "theirs"), app_files("t", "t", extra={
            "META-INF/context.xml": '<Context workDir="%s"/>' % elsewhere}))
        node.config.check()
        mine, theirs = node.host.find_child("/mine"), node.host.find_child("/theirs")
        assert mine.manager.work_dir == os.path.join(str(tmp_path), "work", "Catalina", "localhost", "mine")
        assert theirs.manager.work_dir == str(elsewhere)
        for ctx in (mine, theirs):
            os.makedirs(ctx.manager.work_dir, exist_ok=True)
            with open(os.path.join(ctx.manager.work_dir, "keep.txt"), "w") as fh:
                fh.write("data")
        # folders renamed away (hidden names are not apps): both apps are undeployed
        for name in ("mine", "theirs"):
            os.rename(os.path.join(node.app_base, name), os.path.join(node.app_base, "." + name))
        with LogCapture() as logs:
            node.config.check()
        assert node.get("/mine/hello")[0] == 404 and node.get("/theirs/hello")[0] == 404
        assert not os.path.exists(mine.manager.work_dir)
        assert (elsewhere / "keep.txt").read_text() == "data"
        assert "the work folder %s of /theirs is left in place" % elsewhere in logs.text
    finally:
        node.stop()


@pytest.mark.timeout(60)
def test_redeploy_keeps_the_work_folder_and_undeploy_removes_it(tmp_path):
    node = Node(tmp_path)
    try:
        war = write_war(os.path.join(node.app_base, "app.war"), app_files(1, "a"))
        node.config.check(), node.config.check()
        work = node.host.find_child("/app").manager.work_dir
        os.makedirs(work, exist_ok=True)
        marker = os.path.join(work, "marker")
        open(marker, "w").close()
        write_war(war, app_files(2, "a"))
        bump_mtime(war)
        node.config.check(), node.config.check()
        assert node.body("/app/hello") == (200, "2 a more-a")
        assert os.path.exists(marker)
        os.unlink(war)
        node.config.check()
        assert node.get("/app/hello")[0] == 404
        assert not os.path.exists(work)
        assert os.path.isdir(os.path.dirname(work))          # the Host's work folder stays
    finally:
        node.stop()
