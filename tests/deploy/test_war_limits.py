"""maxExpandedEntries on a real node: a WAR with more entries than the Host allows is refused with
the reason in the log and the running version keeps serving; the default refuses 30,000."""
import os
import zipfile

import pytest

from real_node import real_node  # noqa: F401 (a fixture)

from deploy_helpers import app_files, bump_mtime, write_war


def war_with_entries(path, value, total):
    """An app whose WAR has exactly ``total`` entries (the app's own plus empty static files)."""
    files = app_files(value, "w")
    files.update({"static/f%05d.txt" % i: "" for i in range(total - len(files))})
    write_war(path, files)
    with zipfile.ZipFile(path) as zf:
        assert len(zf.infolist()) == total
    return path


def listing(folder):
    return sorted(os.path.relpath(os.path.join(d, n), folder) for d, ds, fs in os.walk(folder) for n in ds + fs)


def redeploy_is_refused(node, war, total, limit):
    before = listing(os.path.join(node.webapps, "app"))
    war_with_entries(war, 2, total)
    bump_mtime(war, 2)
    node.wait_until(lambda: "maxExpandedEntries" in node.log(), 60, "refusal logged")
    assert "%d entries, more than the limit of %d (maxExpandedEntries)" % (total, limit) in node.log()
    assert "the previous version keeps serving" in node.log()
    assert node.get("/app/hello").text == "1 w more-w"
    assert listing(os.path.join(node.webapps, "app")) == before       # the old files were put back
    assert [n for n in os.listdir(node.webapps) if n.startswith(".")] == []


@pytest.mark.timeout(180)
def test_host_attribute_limits_the_entries(tmp_path, real_node):
    node = real_node('maxExpandedEntries="100"').start()
    war = os.path.join(node.webapps, "app.war")
    # positive control: exactly at the limit deploys
    war_with_entries(war, 1, 100)
    node.wait_until(lambda: node.status("/app/hello") == 200, 20, "deployed")
    assert node.get("/app/hello").text == "1 w more-w"
    redeploy_is_refused(node, war, 101, 100)


@pytest.mark.timeout(300)
def test_default_limit_refuses_thirty_thousand_entries(tmp_path, real_node):
    node = real_node().start()
    war = os.path.join(node.webapps, "app.war")
    write_war(war, app_files(1, "w"))
    node.wait_until(lambda: node.status("/app/hello") == 200, 20, "deployed")
    redeploy_is_refused(node, war, 30000, 20000)
