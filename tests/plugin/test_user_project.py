"""The plugin as a user meets it: a project outside the repository, no conftest, ``pytest`` run in
a subprocess. The example project passes; a failing test shows its nodes' logs; ``-n 2`` runs
clusters side by side without sharing a port or a multicast group; and the nodes die with the
pytest process however it ends."""
import glob
import json
import os
import shutil
import signal
import subprocess

import pytest
from plugin_project import EXAMPLE, env, gone, make_project, pytest_argv, run_pytest, wait_for

pytestmark = pytest.mark.timeout(200)


def test_the_flask_example_passes_as_a_user_project(tmp_path):
    pytest.importorskip("flask")            # the example's app is a Flask app (in the test extra)
    project = tmp_path / "flask-cluster"
    shutil.copytree(EXAMPLE, project)
    # what the user has: the example's files, no conftest anywhere, pycat installed
    assert not glob.glob(str(project / "**" / "conftest.py"), recursive=True)
    result = run_pytest(project, tmp_path / "bt", "-q")
    assert result.returncode == 0, result.stdout
    assert "3 passed" in result.stdout, result.stdout
    # the plugin's fixtures came from the entry point, and removed the bases of the passing tests
    assert not glob.glob(str(tmp_path / "bt" / "**" / "catalina.out"), recursive=True)


FAILING = {"test_fails.py": """
    import json, os

    def test_fails(pycat_node, pycat_user):
        node = pycat_node(apps=["counter"])
        assert pycat_user(node).get("/counter/").text == "n=1\\n"
        with open(os.environ["PIDS_FILE"], "w") as fh:
            json.dump({"pid": node.pid, "base": node.base}, fh)
        assert pycat_user(node).get("/counter/").text == "n=2\\n", "a new user starts at 1"

    def test_passes(pycat_node):
        assert pycat_node(name="other").get("/").status == 404
"""}


@pytest.mark.parametrize("keep", [False, True])
def test_a_failing_test_shows_its_node_log_and_keep_keeps_the_base(tmp_path, keep):
    project = make_project(tmp_path / "proj", FAILING)
    pids_file = tmp_path / "pids.json"
    args = ["-q", "--pycat-log-level=info"] + (["--pycat-keep"] if keep else [])
    result = subprocess.run(pytest_argv(project, tmp_path / "bt", *args), cwd=project,
                            env=dict(env(), PIDS_FILE=str(pids_file)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=170)
    out = result.stdout
    assert result.returncode == 1 and "1 failed, 1 passed" in out, out
    recorded = json.loads(pids_file.read_text())
    # the failure report carries the node's own log lines, under a section naming the node
    assert "pycat node1 log (%s" % os.path.join(recorded["base"], "logs", "catalina.out") in out, out
    assert "Server startup in" in out and "deploying web application directory" in out, out
    assert "a new user starts at 1" in out
    # only the failing test's node is reported
    assert "pycat other log" not in out
    # the node was stopped at the end of its test although the test failed
    assert gone(recorded["pid"])
    base = recorded["base"]
    if keep:
        assert "kept for inspection (--pycat-keep)" in out and base in out, out
        assert os.path.exists(os.path.join(base, "logs", "catalina.out"))
        assert "pycat: node bases of failed tests kept" in out
        # the passing test's base was removed all the same
        assert not glob.glob(str(tmp_path / "bt" / "test_passes*" / "pycat" / "other"))
    else:
        assert "--pycat-keep keeps them" in out, out
        assert not os.path.exists(base)


CLUSTERS = {"test_clusters.py": """
    import json, os
    import pytest
    from pycat.testing import ports

    @pytest.mark.parametrize("i", range(4))
    def test_cluster(pycat_cluster, pycat_user, i):
        cluster = pycat_cluster(2, apps=["counter"], send_options=6)
        user = pycat_user(cluster[0])
        assert user.get("/counter/").text == "n=1\\n"
        assert user.get("/counter/", node=cluster[1]).text == "n=2\\n"   # the replica
        record = {"worker": ports.worker_id(), "group": [cluster.group, cluster.mcast_port],
                  "ports": sorted(p for n in cluster for p in n.ports.values())}
        with open(os.path.join(os.environ["RECORDS"], "%d.json" % i), "w") as fh:
            json.dump(record, fh)
"""}


def test_xdist_workers_run_clusters_side_by_side_without_clashes(tmp_path):
    pytest.importorskip("xdist")
    project = make_project(tmp_path / "proj", CLUSTERS)
    records = tmp_path / "records"
    records.mkdir()
    result = subprocess.run(pytest_argv(project, tmp_path / "bt", "-q", "-n", "2"), cwd=project,
                            env=dict(env(), RECORDS=str(records)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=190)
    assert result.returncode == 0 and "4 passed" in result.stdout, result.stdout
    found = [json.loads(p.read_text()) for p in sorted(records.iterdir())]
    assert len(found) == 4
    # both workers ran clusters (else nothing ran side by side)
    assert {r["worker"] for r in found} == {"gw0", "gw1"}, found
    groups = [tuple(r["group"]) for r in found]
    assert len(set(groups)) == 4 and len({port for _, port in groups}) == 4, groups
    every_port = [p for r in found for p in r["ports"]] + [port for _, port in groups]
    assert len(every_port) == len(set(every_port)), found


HANGING = {"test_hangs.py": """
    import json, os, time

    def test_hangs(pycat_cluster, pycat_node):
        cluster = pycat_cluster(2, apps=["counter"])
        node = pycat_node(apps=["counter"])
        with open(os.environ["PIDS_FILE"] + ".part", "w") as fh:
            json.dump([n.pid for n in cluster] + [node.pid], fh)
        os.rename(os.environ["PIDS_FILE"] + ".part", os.environ["PIDS_FILE"])
        time.sleep(150)          # interrupted from outside
"""}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_nodes_die_with_the_pytest_process(tmp_path, sig):
    project = make_project(tmp_path / "proj", HANGING)
    pids_file = tmp_path / "pids.json"
    proc = subprocess.Popen(pytest_argv(project, tmp_path / "bt", "-q", "-s"), cwd=project,
                            env=dict(env(), PIDS_FILE=str(pids_file)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(lambda: pids_file.exists() or proc.poll() is not None, 120, "the nodes to start")
        assert proc.poll() is None, proc.communicate()[0]
        pids = json.loads(pids_file.read_text())
        assert len(pids) == 3
        # positive control: the nodes run while the test does
        assert not any(gone(pid) for pid in pids), pids
        proc.send_signal(sig)
        out = proc.communicate(timeout=90)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if sig == signal.SIGINT:
        # an interrupted session tears its fixtures down: every node stopped, none left to kill
        assert proc.returncode == 2 and "KeyboardInterrupt" in out, out
        assert "still running at the end of the session" not in out, out
    else:
        assert proc.returncode == -signal.SIGKILL
    wait_for(lambda: all(gone(pid) for pid in pids), 15, "the nodes %s to die" % pids)
