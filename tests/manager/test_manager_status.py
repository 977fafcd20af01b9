"""/manager/status, /manager/cluster (JSON and the polling pages) and `pycat cluster status` on a
real two-node cluster (tests/ha/cluster_harness.py's nodes, with the manager app, a realm and
manager users added to each node)."""
import base64
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse

import lxml.html
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "ha"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from cluster_harness import SYNC, User, build_cluster, wait_until  # noqa: E402
from node_helpers import HOME, Procs, node_env, pycat_cmd  # noqa: E402

USERS = """<?xml version="1.0" encoding="UTF-8"?>
<tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
  <user username="watcher" password="w-pw" roles="manager-status"/>
  <user username="admin" password="a-pw" roles="manager-gui"/>
  <user username="deployer" password="s3cret" roles="manager-script"/>
  <user username="plain" password="plain-pw" roles="tomcat"/>
</tomcat-users>
"""
from test_manager_text import REALM as NAMING  # noqa: E402  (the shipped realm's user database)

ENGINE = 'jvmRoute="${jvm.route:-node0}" backgroundProcessorDelay="1">'
REALM = ('\n      <Realm className="org.apache.catalina.realm.UserDatabaseRealm" resourceName="UserDatabase"/>')
# this tree's pycat for the nodes (the manager app imports pycat.startup.manager_api)
PYTHONPATH = os.pathsep.join(p for p in (HOME, os.environ.get("PYTHONPATH")) if p)


def add_manager(base):
    path = os.path.join(base, "conf", "server.xml")
    with open(path) as fh:
        xml = fh.read()
    assert '<Service name="Catalina">' in xml and ENGINE in xml
    xml = xml.replace('<Service name="Catalina">', NAMING, 1).replace(ENGINE, ENGINE + REALM, 1)
    with open(path, "w") as fh:
        fh.write(xml)
    with open(os.path.join(base, "conf", "tomcat-users.xml"), "w") as fh:
        fh.write(USERS)
    shutil.copytree(os.path.join(HOME, "webapps", "manager"), os.path.join(base, "webapps", "manager"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = PYTHONPATH     # node_env copies os.environ
    c = build_cluster(tmp_path_factory.mktemp("status"), 2, SYNC, procs=Procs())
    try:
        for node in c.nodes:
            add_manager(node.base)
        c.start()
        yield c
    finally:
        c.cleanup()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def get(node, path, user=None, password=None):
    """(status, content type, body text) of GET path."""
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=15)
    try:
        headers = {}
        if user is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def get_json(node, path, user="watcher", password="w-pw"):
    status, ctype, body = get(node, path, user, password)
    assert status == 200, (status, body[:500])
    assert ctype.startswith("application/json"), ctype
    return json.loads(body)


def the_cluster(node):
    doc = get_json(node, "/manager/cluster/json")
    assert len(doc["clusters"]) == 1, doc
    return doc["clusters"][0]


def app_manager(cluster_row):
    rows = [m for m in cluster_row["managers"] if m["context"] == "/app"]
    assert len(rows) == 1, cluster_row["managers"]
    return rows[0]


def test_roles_enforced(cluster):
    a = cluster.nodes[0]
    for path in ("/manager/status/json", "/manager/status", "/manager/cluster/json", "/manager/cluster"):
        assert get(a, path)[0] == 401, path
        assert get(a, path, "watcher", "wrong")[0] == 401, path
        assert get(a, path, "plain", "plain-pw")[0] == 403, path
        # positive controls: manager-status and manager-script both read it
        assert get(a, path, "watcher", "w-pw")[0] == 200, path
        assert get(a, path, "deployer", "s3cret")[0] == 200, path
    # manager-status reads, it does not drive the text interface
    assert get(a, "/manager/text/list", "watcher", "w-pw")[0] == 403
    assert get(a, "/manager/text/list", "deployer", "s3cret")[0] == 200


def test_cluster_view_members_and_session_counts(cluster):
    a, b = cluster.nodes
    views = {node: the_cluster(node) for node in (a, b)}
    for me, other in ((a, b), (b, a)):
        view = views[me]
        assert view["local_member"]["port"] == me.rx_port and view["local_member"]["local"]
        assert [m["port"] for m in view["members"]] == [other.rx_port], view["members"]
        assert view["members"][0]["host"] == "127.0.0.1" and view["members"][0]["alive_ms"] > 0
        row = app_manager(view)
        assert row["class"].endswith("DeltaManager") and "send_delta" in row["counters"]
        assert "state_transfer_seconds" in row
        classes = sorted(v["class"].rsplit(".", 1)[-1] for v in view["valves"])
        assert classes == ["JvmRouteBinderValve", "ReplicationValve"], view["valves"]
        assert [v["enabled"] for v in view["valves"] if v["class"].endswith("JvmRouteBinderValve")] == [True]
    before = {n: app_manager(views[n])["sessions"]["active"] for n in (a, b)}
    sent_before = app_manager(views[a])["counters"]["send_delta"]
    users = [User() for _ in range(3)]
    for user in users:
        user.get(a, "/set?name=k&value=v")
    after_a = app_manager(the_cluster(a))
    assert after_a["sessions"]["active"] == before[a] + 3
    assert after_a["counters"]["send_delta"] >= sent_before + 3
    # SYNC replication: node2 holds the copies once the responses came back
    wait_until(lambda: app_manager(the_cluster(b))["sessions"]["active"] == before[b] + 3, timeout=10,
               message="node2's cluster view to count the replicated sessions")
    users[0].get(a, "/invalidate")
    wait_until(lambda: app_manager(the_cluster(b))["sessions"]["active"] == before[b] + 2, timeout=10,
               message="node2's cluster view to drop the invalidated session")


def test_status_json_counts_requests(cluster):
    a = cluster.nodes[0]
    doc = get_json(a, "/manager/status/json")
    assert doc["pid"] > 0 and doc["uptime_seconds"] > 0 and doc["greenlets"] > 0
    assert doc["rss_bytes"] is None or doc["rss_bytes"] > 1024 * 1024
    http_conn = [c for c in doc["connectors"] if c["port"] == a.http_port]
    assert len(http_conn) == 1 and http_conn[0]["open_connections"] >= 1, doc["connectors"]
    app = {r["path"]: r for r in doc["apps"]}["/app"]
    assert app["distributable"] and set(app["sessions"]) >= {"active", "created", "expired", "rejected"}
    for _ in range(4):
        User().get(a, "/set?name=x&value=y")
    a.request("/app/nosuch")          # the app's 404: an error
    doc2 = get_json(a, "/manager/status/json")
    app2 = {r["path"]: r for r in doc2["apps"]}["/app"]
    assert app2["requests"] == app["requests"] + 5
    assert app2["errors"] == app["errors"] + 1
    assert app2["bytes_sent"] > app["bytes_sent"] and app2["max_ms"] > 0
    assert app2["sessions"]["created"] == app["sessions"]["created"] + 4
    conn2 = [c for c in doc2["connectors"] if c["port"] == a.http_port][0]
    assert conn2["requests"] >= http_conn[0]["requests"] + 6      # the app's 5 and the status request


def test_pages_poll_their_json(cluster):
    a = cluster.nodes[0]
    for name, url in (("status", '"/manager/status/json"'), ("cluster", '"/manager/cluster/json?farm=local"')):
        status, ctype, body = get(a, "/manager/" + name, "watcher", "w-pw")
        assert status == 200 and ctype.startswith("text/html"), (status, ctype)
        assert "setInterval(poll,2000)" in body and url in body
        assert "<script src" not in body and "http://" not in body and "https://" not in body    # no external assets
    assert get(a, "/manager/cluster/json?farm=local", "watcher", "w-pw")[0] == 200
    assert get(a, "/manager/status/nosuch", "watcher", "w-pw")[0] == 404


def test_pycat_cluster_status_prints_both_members(cluster):
    a, b = cluster.nodes
    env = node_env(a.base, PYTHONPATH=PYTHONPATH)
    res = subprocess.run(pycat_cmd("cluster", "status", "--base", a.base), env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "tcp://127.0.0.1:%d" % a.rx_port in out and "(this node)" in out
    assert "tcp://127.0.0.1:%d" % b.rx_port in out
    assert "DeltaManager" in out and "JvmRouteBinderValve  enabled=true" in out
    assert "Turnover mode (this node's JvmRouteBinderValve): on" in out
    res = subprocess.run(pycat_cmd("cluster", "status", "--json", "--base", a.base), env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    # the same dict the page polls
    page = get_json(a, "/manager/cluster/json")
    assert doc.keys() == page.keys()
    assert [m["port"] for m in doc["clusters"][0]["members"]] == [b.rx_port]
    assert doc["clusters"][0]["local_member"]["id"] == page["clusters"][0]["local_member"]["id"]


# -- turnover mode, replication times, the members picture -------------------------------------------
NONCE = "org.apache.catalina.filters.CSRF_NONCE"


class Gui:
    """A manager-gui user's browser on one node's /manager: BASIC credentials and the session cookie
    (which the CSRF nonces belong to)."""

    def __init__(self, node, user="admin", password="a-pw"):
        self.node, self.user, self.password, self.cookie = node, user, password, None

    def request(self, method, path, fields=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.node.http_port, timeout=15)
        try:
            headers = {"Authorization": "Basic " + base64.b64encode(
                ("%s:%s" % (self.user, self.password)).encode()).decode()}
            if self.cookie:
                headers["Cookie"] = "JSESSIONID=" + self.cookie
            body = None
            if fields is not None:
                body = urllib.parse.urlencode(fields)
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            status, cookie, text = resp.status, resp.getheader("Set-Cookie") or "", resp.read().decode("utf-8")
        finally:
            conn.close()
        m = re.search(r"JSESSIONID=([^;]+)", cookie)
        if m:
            self.cookie = m.group(1)
        return status, text


def turnover_form(gui):
    status, text = gui.request("GET", "/manager/cluster")
    assert status == 200, text[:300]
    doc = lxml.html.fromstring(text)
    forms = doc.xpath('//form[@id="turnover" and @method="post"]')
    assert len(forms) == 1 and len(forms[0].xpath(".//button")) == 1
    return doc, forms[0]


def binder_enabled(node):
    view = the_cluster(node)
    return [v["enabled"] for v in view["valves"] if v["class"].endswith("JvmRouteBinderValve")]


def test_turnover_mode_switches_this_nodes_binder_valve(cluster):
    a, b = cluster.nodes
    assert get_json(a, "/manager/cluster/json")["turnover"] is True
    assert get_json(b, "/manager/cluster/json")["turnover"] is True and the_cluster(b)["turnover"] is True
    gui = Gui(b)
    doc, form = turnover_form(gui)
    assert doc.get_element_by_id("turnover-state").text_content() == "on"
    assert form.xpath('.//input[@name="enabled"]')[0].get("value") == "false"
    action = form.get("action")
    assert action.startswith("/manager/cluster/turnover?") and NONCE in action
    # a read-only user sees no form
    status, _, body = get(b, "/manager/cluster", "watcher", "w-pw")
    assert status == 200 and 'id="turnover"' not in body

    # while b's valve is on, a session made on a moves to b's route when its user comes to b
    moved = User()
    assert moved.get(a, "/set?name=k&value=1").json["id"].endswith(".node1")
    assert moved.get(b, "/get?name=k").json["id"].endswith(".node2")

    # refused, and nothing changes: no nonce; a user without manager-gui (the role constraint
    # refuses it before the CSRF filter runs: the log has no nonce refusal for these users)
    bare = action.split("?")[0]
    assert gui.request("POST", bare, {"enabled": "false"})[0] == 403
    for user, password in (("watcher", "w-pw"), ("deployer", "s3cret")):
        other = Gui(b, user, password)
        assert other.request("GET", "/manager/cluster")[0] == 200
        assert other.request("POST", action, {"enabled": "false"})[0] == 403, user
        assert "CSRF nonce (user [%s]" % user not in b.log()
    assert binder_enabled(b) == [True]

    # the positive control: admin with the nonce turns it off, on b only
    status, text = gui.request("POST", action, {"enabled": "false"})
    assert status == 200
    page = lxml.html.fromstring(text)
    assert page.get_element_by_id("message").text_content() == \
        "OK - Turnover mode off: 1 JvmRouteBinderValve(s) disabled on this node"
    assert page.get_element_by_id("turnover-state").text_content() == "off"
    assert binder_enabled(b) == [False] and get_json(b, "/manager/cluster/json")["turnover"] is False
    assert binder_enabled(a) == [True]
    try:
        # now a session from a keeps its id on b
        kept = User()
        assert kept.get(a, "/set?name=k&value=2").json["id"].endswith(".node1")
        assert kept.get(b, "/get?name=k").json == {"id": kept.sid, "value": "2"} and kept.sid.endswith(".node1")
    finally:
        doc, form = turnover_form(gui)
        assert form.xpath('.//input[@name="enabled"]')[0].get("value") == "true"
        status, text = gui.request("POST", form.get("action"), {"enabled": "true"})
        assert status == 200
    assert lxml.html.fromstring(text).get_element_by_id("message").text_content() == \
        "OK - Turnover mode on: 1 JvmRouteBinderValve(s) enabled on this node"
    assert binder_enabled(b) == [True]
    again = User()
    again.get(a, "/set?name=k&value=3")
    assert again.get(b, "/get?name=k").json["id"].endswith(".node2")
    log = b.log()
    assert re.search(r"Manager: turnover\(false\) by user \[admin\] from \[127\.0\.0\.1\]: OK - Turnover mode off", log)
    assert re.search(r"Manager: turnover\(true\) by user \[admin\] from \[127\.0\.0\.1\]: OK - Turnover mode on", log)
    assert re.search(r"Manager: POST /manager/cluster/turnover refused: no valid CSRF nonce", log)


def test_average_replication_time_per_app(cluster):
    a, b = cluster.nodes
    before = app_manager(the_cluster(a))
    assert {"avg_replication_ms", "replications"} <= set(before)
    users = [User() for _ in range(3)]
    for user in users:
        user.get(a, "/set?name=r&value=1")
    users[0].get(a, "/get?name=r")          # reads nothing new: no message, not counted
    after = app_manager(the_cluster(a))
    assert after["replications"] == before["replications"] + 3
    assert after["avg_replication_ms"] > 0
    # SYNC: each waited for node2's acknowledgement, so it took a round trip, yet not seconds
    assert after["avg_replication_ms"] < 5000


def test_cluster_page_draws_the_members(cluster):
    a = cluster.nodes[0]
    status, ctype, body = get(a, "/manager/cluster", "admin", "a-pw")
    assert status == 200
    # the picture is drawn by the page's script from the JSON (a browser test looks at the DOM)
    assert '"members-picture"' in body and 'class="member' in body and "member self" in body
    view = the_cluster(a)
    assert view["local_member"]["route"] == "node1"
