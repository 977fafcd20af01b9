"""The AJP/1.3 connector over real sockets (an in-process server, a byte-level AJP client)."""
import logging
import os
import random
import socket

import gevent
import gevent.socket
import pytest

from pycat.connector import ajp_packet as ajp
from pycat.connector.connector import Connector
from pycat.valves.access_log import AccessLogValve
from pycat.webapp.servlet import HttpServlet

from ajp_client import AjpClient
from pycat_harness import Tree, wait_for

pytestmark = pytest.mark.timeout(60)
SECRET = "s3cret"


class Info(HttpServlet):
    def do_get(self, request, response):
        response.content_type = "text/plain"
        fields = {
            "method": request.method, "path": request.path, "query": request.query_string,
            "secure": request.is_secure, "scheme": request.scheme, "remote_addr": request.remote_addr,
            "remote_host": request.remote_host, "remote_port": request.remote_port,
            "local_addr": request.local_addr, "remote_user": request.remote_user,
            "server_name": request.server_name, "server_port": request.server_port,
            "cipher": request.get_attribute("jakarta.servlet.request.cipher_suite"),
            "key_size": request.get_attribute("jakarta.servlet.request.key_size"),
            "cert": request.get_attribute("jakarta.servlet.request.X509Certificate"),
            "protocol_attr": request.get_attribute("jakarta.servlet.request.secure_protocol"),
            "custom": request.get_attribute("custom.name"), "route": request.get_attribute("pycat.ajp.route"),
            "x": request.get_header("x-test"),
        }
        response.write("".join("%s=%s\n" % kv for kv in sorted(fields.items())))

    def service(self, request, response):
        self.do_get(request, response)      # any method: the test reads which one arrived


class Body(HttpServlet):
    def do_post(self, request, response):
        data = request.read_body()
        response.write("len=%d sum=%d" % (len(data), sum(data) % 65536))

    def do_put(self, request, response):
        response.write("not read")          # leaves the body unread: the connector must swallow it


class Stream(HttpServlet):
    def do_get(self, request, response):
        for i in range(3):
            response.write("part%d;" % i)
            response.flush()


def info(body):
    return dict(line.split("=", 1) for line in body.decode().splitlines())


def make_tree(tmp_path, **attrs):
    connector_attrs = {"protocol": "AJP/1.3", "secret": SECRET}
    connector_attrs.update(attrs)
    access = AccessLogValve()
    access.directory = str(tmp_path / "logs")
    access.pattern = "%a \"%r\" %s"
    access.buffered = False
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("info", Info(), ["/info/*"]), ("body", Body(), ["/body"]),
                                                         ("stream", Stream(), ["/stream"])]}},
                connector_attrs=connector_attrs, host_valves=[access])
    tree.access_dir = access.directory
    return tree


def access_log(tree):
    d = tree.access_dir
    return "".join(open(os.path.join(d, n)).read() for n in os.listdir(d)) if os.path.isdir(d) else ""


@pytest.fixture
def tree(tmp_path):
    t = make_tree(tmp_path)
    yield t
    t.stop()


def test_requests_on_one_connection_and_forwarded_data(tree):
    c = AjpClient(tree.port)
    try:
        status, headers, body, reuse, _ = c.request(
            uri="/app/info/x", is_ssl=True, remote_addr="203.0.113.9", remote_host="client.example",
            server_name="www.example", server_port=443, headers=[("host", "www.example"), ("X-Test", "yes")],
            attributes=[("query_string", "a=1&b=%C3%A9"), ("ssl_cipher", "TLS_AES_256_GCM_SHA384"),
                        ("ssl_key_size", 256), ("ssl_cert", "-----BEGIN CERTIFICATE-----x"), ("route", "node7"),
                        ("remote_user", "mallory")],
            request_attributes=[("AJP_REMOTE_PORT", "50123"), ("AJP_LOCAL_ADDR", "192.0.2.1"),
                                ("AJP_SSL_PROTOCOL", "TLSv1.3")])
        assert status == 200 and reuse
        got = info(body)
        assert got["path"] == "/info/x" and got["query"] == "a=1&b=%C3%A9" and got["x"] == "yes"
        assert (got["secure"], got["scheme"]) == ("True", "https")
        assert (got["remote_addr"], got["remote_host"], got["remote_port"]) == ("203.0.113.9", "client.example", "50123")
        assert got["local_addr"] == "192.0.2.1"
        assert (got["server_name"], got["server_port"]) == ("www.example", "443")
        assert (got["cipher"], got["key_size"], got["protocol_attr"]) == ("TLS_AES_256_GCM_SHA384", "256", "TLSv1.3")
        assert got["cert"].startswith("-----BEGIN CERTIFICATE-----") and got["route"] == "node7"
        assert got["remote_user"] == "None"      # tomcatAuthentication="true": httpd's user is not trusted
        # the same connection serves the next requests (a coded WebDAV method, a stored one)
        status, _, body, reuse, _ = c.request("PROPFIND", uri="/app/info/y")
        assert status == 200 and info(body)["method"] == "PROPFIND" and info(body)["secure"] == "False"
        status, _, body, reuse, _ = c.request("PATCH", uri="/app/info/z")
        assert status == 200 and info(body)["method"] == "PATCH" and reuse
    finally:
        c.close()


def test_tomcat_authentication_false_takes_the_user_from_httpd(tmp_path):
    tree = make_tree(tmp_path, tomcat_authentication=False)
    try:
        c = AjpClient(tree.port)
        _, _, body, _, _ = c.request(uri="/app/info/", attributes=[("remote_user", "alice"), ("auth_type", "Basic")])
        assert info(body)["remote_user"] == "alice"
        c.close()
    finally:
        tree.stop()


def test_bodies_with_length_without_length_and_unread(tree):
    c = AjpClient(tree.port)
    try:
        data = bytes(random.Random(5).getrandbits(8) for _ in range(100000))
        status, _, body, reuse, gets = c.request("POST", uri="/app/body", body=data)
        assert status == 200 and body == b"len=100000 sum=%d" % (sum(data) % 65536) and reuse
        assert gets == 12              # 13 packets of 8186 bytes: the first came unasked
        status, _, body, _, gets = c.request("POST", uri="/app/body", chunked_body=[b"abc", b"de", b"f" * 8186])
        assert body == b"len=8191 sum=%d" % ((sum(b"abcde") + 8186 * ord("f")) % 65536) and gets == 4
        # PUT leaves its body unread: the first packet is swallowed and the connection stays in step
        status, _, body, reuse, gets = c.request("PUT", uri="/app/body", body=b"z" * 20000)
        assert (status, body, reuse, gets) == (200, b"not read", True, 0)
        status, _, body, _, _ = c.request(uri="/app/info/after")
        assert status == 200 and info(body)["path"] == "/info/after"
    finally:
        c.close()


def test_a_body_packet_larger_than_packet_size_is_refused(tree, caplog):
    c = AjpClient(tree.port)
    with caplog.at_level(logging.WARNING, "pycat.connector.ajp"):
        status, _, _, reuse, _ = c.request("POST", uri="/app/body", chunked_body=[b"f" * 8186, b"f" * 8187])
    assert (status, reuse) == (400, False) and c.closed()
    c.close()
    assert "more than packetSize 8192 allows" in caplog.text
    c = AjpClient(tree.port)                 # the largest allowed packet goes through (positive control)
    assert c.request("POST", uri="/app/body", chunked_body=[b"f" * 8186])[2].startswith(b"len=8186 ")
    c.close()


def test_streamed_response_and_head(tree):
    c = AjpClient(tree.port)
    try:
        status, _, body, reuse, _ = c.request(uri="/app/stream")
        assert (status, body, reuse) == (200, b"part0;part1;part2;", True)
        status, headers, body, reuse, _ = c.request("HEAD", uri="/app/info/")
        assert status == 200 and body == b"" and int(headers["content-length"][0]) > 0
        status, _, _, _, _ = c.request(uri="/app/missing")
        assert status == 404
    finally:
        c.close()


def test_cping_is_answered_with_cpong_between_requests(tree):
    c = AjpClient(tree.port)
    try:
        c.send(ajp.CPING_PACKET)
        assert c.packet() == ("cpong",)
        assert c.request(uri="/app/info/")[0] == 200
        c.send(ajp.CPING_PACKET + ajp.CPING_PACKET)
        assert [c.packet(), c.packet()] == [("cpong",), ("cpong",)]
    finally:
        c.close()


def test_wrong_or_missing_secret_gets_403_logged_and_closed(tree, caplog):
    good = AjpClient(tree.port)
    assert good.request(uri="/app/info/good")[0] == 200        # positive control, same connector
    good.close()
    for secret in ("wrong", None):
        c = AjpClient(tree.port)
        with caplog.at_level(logging.WARNING, "pycat.connector.ajp"):
            status, _, body, reuse, _ = c.request(uri="/app/info/refused", secret=secret)
        assert (status, body, reuse) == (403, b"", False)
        assert c.closed()
        c.close()
    assert caplog.text.count("refused with 403") == 2
    assert "wrong secret" in caplog.text and "no secret" in caplog.text
    wait_for(lambda: access_log(tree).count("/app/info/refused") == 2, 5, "the refusals in the access log")
    assert '"GET /app/info/good HTTP/1.1" 200' in access_log(tree)


def test_request_attributes_need_the_pattern(tmp_path):
    for pattern, expected in ((None, 403), (r"custom\..*", 200)):
        tree = make_tree(tmp_path / str(expected), allowed_request_attributes_pattern=pattern)
        try:
            c = AjpClient(tree.port)
            status, _, body, _, _ = c.request(uri="/app/info/", request_attributes=[("custom.name", "v")])
            assert status == expected
            if expected == 200:
                assert info(body)["custom"] == "v"
            c.close()
        finally:
            tree.stop()


def test_secret_required_without_secret_does_not_listen(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        tree = make_tree(tmp_path, secret=None)
    try:
        assert tree.connector.bound_port is None and tree.server.state.available
        assert "secretRequired" in caplog.text
    finally:
        tree.stop()
    open_tree = make_tree(tmp_path / "open", secret=None, secret_required=False)    # positive control
    try:
        c = AjpClient(open_tree.port)
        assert c.request(uri="/app/info/", secret=None)[0] == 200
        c.close()
    finally:
        open_tree.stop()


def test_default_address_is_loopback_and_protocol_names():
    c = Connector()
    c.protocol = "org.apache.coyote.ajp.AjpNioProtocol"
    assert c.is_ajp and c.bind_address() == "127.0.0.1"
    c.address = "0.0.0.0"
    assert c.bind_address() == "0.0.0.0"
    h = Connector()
    assert not h.is_ajp and h.bind_address() == "0.0.0.0"


@pytest.mark.parametrize("data, why", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "magic"),
    (b"\x12\x34\xff\xff", "packetSize"),
    (b"\x12\x34\x00\x03\x02\x02\x00", "malformed"),
    (b"\x12\x34\x00\x02\x00\x01", "unexpected packet type"),     # a body packet where a request starts
    (ajp.SHUTDOWN_PACKET, "SHUTDOWN"),
])
def test_malformed_packets_close_the_connection_and_are_logged(tree, caplog, data, why):
    c = AjpClient(tree.port)
    with caplog.at_level(logging.WARNING, "pycat.connector.ajp"):
        c.send(data)
        assert c.closed()
    c.close()
    assert why in caplog.text
    ok = AjpClient(tree.port)                 # the server goes on
    assert ok.request(uri="/app/info/")[0] == 200
    ok.close()


def test_connection_closed_inside_a_body_is_a_bad_request_not_a_crash(tree, caplog):
    c = AjpClient(tree.port)
    c.send(ajp.forward_request("POST", "/app/body", headers=[("content-length", "20000")],
                               attributes=[("secret", SECRET)]) + ajp.body_packet(b"x" * 8000))
    assert c.packet() == ("get", 8186)
    c.send(b"\x12\x34\x00")                # half a head, then gone
    c.sock.shutdown(socket.SHUT_WR)
    packets = []
    while True:
        try:
            p = c.packet()
        except ConnectionError:
            break
        if p is None:
            break
        packets.append(p)
    c.close()
    ok = AjpClient(tree.port)
    assert ok.request(uri="/app/info/")[0] == 200
    ok.close()


def test_fuzzed_streams_never_stop_the_server(tree):
    rng = random.Random(1938)
    good = ajp.forward_request("POST", "/app/body", headers=[("content-length", "5")],
                               attributes=[("secret", SECRET)]) + ajp.body_packet(b"hello")
    closed = 0
    for i in range(150):
        if i % 3 == 0:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200)))
        elif i % 3 == 1:
            data = good[:rng.randrange(1, len(good))]                       # truncated
        else:
            mutated = bytearray(good)
            for _ in range(rng.randint(1, 3)):
                mutated[rng.randrange(len(mutated))] = rng.getrandbits(8)
            data = bytes(mutated)
        sock = gevent.socket.create_connection(("127.0.0.1", tree.port), timeout=10)
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            with gevent.Timeout(10):
                while sock.recv(65536):
                    pass
            closed += 1
        except ConnectionError:
            closed += 1
        finally:
            sock.close()
    assert closed == 150                        # every connection ended (none hung)
    c = AjpClient(tree.port)
    assert c.request("POST", uri="/app/body", body=b"hello")[:3] == (200, {"content-length": ["13"]}, b"len=5 sum=532")
    c.close()


def test_stop_ends_idle_pooled_connections(tmp_path):
    # httpd keeps AJP connections open between requests, and AJP has no idle timeout by default:
    # stop() must end them itself rather than wait for them
    tree = make_tree(tmp_path)
    c = AjpClient(tree.port)
    try:
        assert c.request(uri="/app/info/")[0] == 200          # the connection works, then idles
        with gevent.Timeout(20):
            tree.stop()
        assert c.closed()
    finally:
        c.close()
