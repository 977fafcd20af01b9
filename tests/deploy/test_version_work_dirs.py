"""Each ## version of an app has its own work folder (Tomcat's work/<Engine>/<Host>/<base name>),
so parallel versions never share one SESSIONS.ser."""
import os

import pytest

from deploy_helpers import Node, app_files, write_folder


@pytest.mark.timeout(60)
def test_parallel_versions_and_root_get_their_own_work_folders(tmp_path):
    node = Node(tmp_path)
    try:
        for name in ("app##1", "app##2", "ROOT"):
            write_folder(os.path.join(node.app_base, name), app_files(name))
        node.config.check()
        work = os.path.join(str(tmp_path), "work", node.tree.engine.name, node.host.name)
        dirs = {c.name: c.manager.work_dir for c in node.host.find_children()}
        assert dirs == {"/app##1": os.path.join(work, "app##1"), "/app##2": os.path.join(work, "app##2"),
                        "": os.path.join(work, "ROOT")}
    finally:
        node.stop()
