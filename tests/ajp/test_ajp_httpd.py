"""A real Apache httpd in front of two real pycat nodes over AJP/1.3, with mod_proxy_ajp and with mod_jk.

Each node runs ``pycat run`` on a server.xml with Tomcat's stock AJP connector (uncommented, with a
secret) and jvmRoute = its mod_jk worker name / its mod_proxy_balancer route. The tests judge what
the client receives through httpd, and the nodes' own logs."""
import hashlib
import http.client
import http.cookiejar
import os
import sys
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ajp_front import AjpFront, make_ajp_node, require_mod_jk, start_nodes  # noqa: E402
from httpd import require_apache2  # noqa: E402
from node_helpers import free_port, wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(120)

MODES = ["proxy_ajp", "jk"]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    require_apache2()
    root = tmp_path_factory.mktemp("ajp-nodes")
    made = [make_ajp_node(str(root / r), r) for r in ("node1", "node2")]
    try:
        yield start_nodes(None, made)
    finally:
        for node in made:
            node.close()


@pytest.fixture
def front(request, nodes, tmp_path):
    """Factory: a started AjpFront of the test's mode over both nodes' AJP ports."""
    started = []

    def make(mode, **kwargs):
        if mode == "jk":
            require_mod_jk()
        members = [(n.route, n.ajp_port) for n in nodes]
        f = AjpFront(str(tmp_path / ("%s-%d" % (mode, len(started)))), free_port(), mode, members, **kwargs)
        started.append(f)
        try:
            return f.start()
        except AssertionError:
            raise AssertionError("httpd did not start:\n%s" % f.diagnostics())

    yield make
    for f in started:
        f.stop()


def browser():
    jar = http.cookiejar.CookieJar()
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar))


def fields(body):
    return dict(t.split("=", 1) for t in body.decode().split() if "=" in t)


@pytest.mark.parametrize("mode", MODES)
def test_sticky_sessions_stay_on_their_node(front, nodes, mode):
    f = front(mode)
    routes_seen = set()
    for client in range(4):
        opener = browser()
        answers = []
        for _ in range(5):
            with opener.open(f.url("/app/count"), timeout=30) as resp:
                assert resp.status == 200
                answers.append(fields(resp.read()))
        route = answers[0]["route"]
        # every request of the session went to the node whose jvmRoute ends the session id
        assert [a["route"] for a in answers] == [route] * 5, (client, answers)
        assert [int(a["count"]) for a in answers] == [1, 2, 3, 4, 5], answers
        assert {a["id"] for a in answers} == {answers[0]["id"]} and answers[0]["id"].endswith("." + route)
        routes_seen.add(route)
    # the balancer did spread new sessions: stickiness, not one node taking everything
    assert routes_seen == {"node1", "node2"}, routes_seen


@pytest.mark.parametrize("mode", MODES)
def test_large_and_chunked_bodies_arrive_intact(front, mode):
    f = front(mode)
    conn = http.client.HTTPConnection("127.0.0.1", f.port, timeout=60)
    try:
        big = os.urandom(5 * 1024 * 1024)
        conn.request("POST", "/app/body", body=big, headers={"Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        got = fields(resp.read())
        assert resp.status == 200
        assert got["len"] == str(len(big)) and got["sha"] == hashlib.sha256(big).hexdigest(), got

        pieces = [os.urandom(n) for n in (1, 8000, 70000, 3, 200000)]
        conn.request("POST", "/app/body", body=iter(pieces), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        resp = conn.getresponse()
        got = fields(resp.read())
        whole = b"".join(pieces)
        assert resp.status == 200
        assert got["len"] == str(len(whole)) and got["sha"] == hashlib.sha256(whole).hexdigest(), got
        assert got["te"] == "chunked" and got["cl"] == "-", got      # it did travel without a length

        # the AJP connections are still in step: plain requests after the bodies are served
        for _ in range(3):
            conn.request("GET", "/app/small")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read().startswith(b"hello from node")
    finally:
        conn.close()


@pytest.mark.parametrize("mode", MODES)
def test_secret_is_enforced(front, nodes, mode):
    good = front(mode)
    bad = front(mode, secret=None)
    node1 = nodes[0]
    before = node1.log_text().count("refused with 403: no secret in the request")
    # positive control: the same connectors, through the same kind of front, with the secret
    for _ in range(4):
        with urllib.request.urlopen(good.url("/app/small"), timeout=30) as resp:
            assert resp.status == 200
    # without it: 403 from pycat, passed through httpd, and logged by the node
    for _ in range(4):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(bad.url("/app/small"), timeout=30)
        assert info.value.code == 403
    wait_until(lambda: sum(n.log_text().count("refused with 403: no secret in the request") for n in nodes)
               >= before + 4, timeout=15, message="the nodes to log the refusals")


@pytest.mark.parametrize("mode", MODES)
def test_forwarded_request_data_reaches_the_app(front, mode):
    f = front(mode)
    req = urllib.request.Request(f.url("/app/info?x=1&y=%C3%A9"), headers={"X-Test": "forwarded"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        got = dict(line.split("=", 1) for line in resp.read().decode().splitlines())
    assert got["query"] == "x=1&y=%C3%A9"
    assert got["x_test"] == "forwarded"
    assert got["remote_addr"] == "127.0.0.1"
    assert got["scheme"] == "http" and got["secure"] == "False"
    assert got["server_name"] == "127.0.0.1" and got["server_port"] == str(f.port)
    if mode == "jk":
        assert got["ajp_route"] == got["route"]     # mod_jk forwards the worker it chose
