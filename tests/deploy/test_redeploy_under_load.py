"""20 redeploys of one app while clients loop on it and on a neighbour: no request fails."""
import os

import gevent
import pytest

from deploy_helpers import Node, app_files, bump_mtime, write_folder, write_war
from test_reload import Loop


@pytest.mark.timeout(120)
def test_twenty_redeploys_under_load(tmp_path):
    node = Node(tmp_path)
    try:
        write_folder(os.path.join(node.app_base, "neighbour"), app_files("n", "nb"))
        war = write_war(os.path.join(node.app_base, "busy.war"), app_files(0, "b"))
        node.config.check(), node.config.check()
        neighbour = Loop(node, "/neighbour/hello", clients=3)
        busy = Loop(node, "/busy/hello", clients=3)
        for i in range(1, 21):
            write_war(war, app_files(i, "b"))
            bump_mtime(war, 2 * i)
            node.config.check(), node.config.check()
            assert node.body("/busy/hello") == (200, "%d b more-b" % i)
            gevent.sleep(0.01)
        n_results, b_results = neighbour.stop(), busy.stop()
        assert len(n_results) > 20 and all(r == (200, "n nb more-nb") for r in n_results), \
            [r for r in n_results if r[0] != 200][:5]
        assert all(status == 200 for status, _ in b_results), [r for r in b_results if r[0] != 200][:5]
        import sys
        assert len([k for k in sys.modules if k.startswith("_pycat_webapp_busy") and "." not in k]) == 1
    finally:
        node.stop()
