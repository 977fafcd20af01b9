"""The HTTP connector over real sockets: keep-alive, TCP_NODELAY, limits, timeouts, slow clients."""
import http.client
import socket
import time

import gevent
import gevent.event
import gevent.socket
import pytest

from pycat.connector.connector import Connector
from pycat.errors import LifecycleError
from pycat.webapp.servlet import HttpServlet

from pycat_harness import Tree, get, in_thread, parse_response, raw_exchange, wait_for

pytestmark = pytest.mark.timeout(30)


class Echo(HttpServlet):
    def do_get(self, request, response):
        response.content_type = "text/plain"
        response.write("%s %s q=%s" % (request.method, request.path, request.get_parameter("q", "")))

    def do_post(self, request, response):
        response.content_type = "text/plain"
        response.write("form=%s" % sorted(request.parameters.items()))


class Blocking(HttpServlet):
    """Holds its request until the test releases it."""

    def __init__(self):
        self.entered = gevent.event.Event()
        self.release = gevent.event.Event()

    def do_get(self, request, response):
        self.entered.set()
        self.release.wait(10)
        response.write("released")


class Streaming(HttpServlet):
    def do_get(self, request, response):
        response.content_type = "text/plain"
        for i in range(3):
            response.write("part%d;" % i)
            response.flush()


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo/*"]),
                                                       ("stream", Streaming(), ["/stream"])]}},
             connector_attrs={"connection_timeout": 2000})
    yield t
    t.stop()


def test_keep_alive_serves_many_requests_on_one_connection(tree):
    def client():
        conn = http.client.HTTPConnection("127.0.0.1", tree.port, timeout=5)
        bodies = []
        for i in range(5):
            conn.request("GET", "/app/echo/x?q=%d" % i)
            resp = conn.getresponse()
            bodies.append(resp.read())
        sock_id = id(conn.sock)
        conn.close()
        return bodies, sock_id
    bodies, _ = in_thread(client)
    assert bodies == [b"GET /echo/x q=%d" % i for i in range(5)]


def test_tcp_nodelay_is_set_on_every_accepted_socket(tmp_path):
    seen = []
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo/*"])]}}, start=False)
    tree.connector.socket_hook = lambda s: seen.append(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    tree.server.start()
    try:
        for _ in range(3):
            assert get(tree.port, "/app/echo/")[0] == 200
        assert seen == [1, 1, 1]
    finally:
        tree.stop()


def test_keep_alive_round_trip_is_fast(tree):
    """With Nagle + delayed ACK a keep-alive request takes ~40 ms; with NODELAY, ~1 ms."""
    def client():
        s = socket.create_connection(("127.0.0.1", tree.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        req = b"GET /app/echo/x HTTP/1.1\r\nHost: localhost\r\n\r\n"
        for _ in range(30):
            t0 = time.perf_counter()
            s.sendall(req)
            data = b""
            while b"q=" not in data:
                data += s.recv(65536)
            times.append(time.perf_counter() - t0)
        s.close()
        return sorted(times)[len(times) // 2]
    assert in_thread(client) < 0.02


def test_headers_and_small_body_leave_in_one_write(tmp_path, monkeypatch):
    """Status line, headers and a small body go to the kernel in ONE send (see handler.py).

    Observed in-process: every send of the server's sockets (gevent's socket.send, which sendall
    uses chunk by chunk) is recorded, so a split into two writes is seen whatever the client's
    recv() happens to coalesce. Positive control: a streamed response is seen as several writes."""
    server_socks = []
    writes = []
    cls = type(gevent.socket.socket())
    for name in ("send", "sendmsg", "sendto"):
        original = getattr(cls, name)

        def spy(self, data, *args, _original=original, **kwargs):
            sent = _original(self, data, *args, **kwargs)
            if any(self is s for s in server_socks):
                writes.append(bytes(data) if not isinstance(data, list) else b"".join(map(bytes, data)))
            return sent
        monkeypatch.setattr(cls, name, spy)
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo/*"]),
                                                       ("stream", Streaming(), ["/stream"])]}}, start=False)
    tree.connector.socket_hook = server_socks.append
    tree.server.start()
    try:
        for path, body in (("/app/echo/x", b"GET /echo/x q="), ("/app/echo/y", b"GET /echo/y q=")):
            del writes[:]
            data = raw_exchange(tree.port, ("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                                             % path).encode())
            assert parse_response(data)[:3:2] == (200, body)
            assert len(writes) == 1, writes                     # one write: head and body together
            assert writes[0] == data and writes[0].endswith(b"\r\n\r\n" + body)
        # positive control: the spy does see separate writes when there are some
        del writes[:]
        data = raw_exchange(tree.port, b"GET /app/stream HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert parse_response(data)[2] == b"part0;part1;part2;"
        assert len(writes) >= 4 and b"".join(writes) == data
    finally:
        tree.stop()


def test_oversized_headers_get_431_and_server_goes_on(tree):
    big = "X-Big: " + "a" * 10000
    data = ("GET /app/echo/ HTTP/1.1\r\nHost: localhost\r\n%s\r\n\r\n" % big).encode()
    status, headers, _, _ = parse_response(raw_exchange(tree.port, data))
    assert status == 431
    many = "".join("X-H%d: %s\r\n" % (i, "v" * 50) for i in range(200))
    data = ("GET /app/echo/ HTTP/1.1\r\nHost: localhost\r\n%s\r\n" % many).encode()
    assert parse_response(raw_exchange(tree.port, data))[0] == 431
    assert get(tree.port, "/app/echo/ok")[0] == 200


def test_too_long_request_line_gets_414(tree):
    data = ("GET /app/echo/%s HTTP/1.1\r\nHost: localhost\r\n\r\n" % ("a" * 9000)).encode()
    assert parse_response(raw_exchange(tree.port, data))[0] == 414
    assert get(tree.port, "/app/echo/ok")[0] == 200


def test_max_http_header_size_is_configurable(tmp_path):
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo/*"])]}},
                connector_attrs={"max_http_header_size": 200})
    try:
        data = ("GET /app/echo/ HTTP/1.1\r\nHost: localhost\r\nX-A: %s\r\n\r\n" % ("b" * 300)).encode()
        assert parse_response(raw_exchange(tree.port, data))[0] == 431
        assert get(tree.port, "/app/echo/")[0] == 200
    finally:
        tree.stop()


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
])
def test_malformed_requests_get_400(tree, data):
    assert parse_response(raw_exchange(tree.port, data))[0] == 400
    assert get(tree.port, "/app/echo/")[0] == 200


def test_slow_client_does_not_delay_others(tree):
    slow = gevent.socket.create_connection(("127.0.0.1", tree.port))
    slow.sendall(b"GET /app/echo/ HTTP/1.1\r\nHost: loc")      # and then nothing
    try:
        t0 = time.monotonic()
        assert get(tree.port, "/app/echo/fast")[0] == 200
        assert time.monotonic() - t0 < 1.0
    finally:
        slow.close()


def test_connection_timeout_closes_idle_and_slow_connections(tmp_path):
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo/*"])]}},
                connector_attrs={"connection_timeout": 300})
    try:
        idle = gevent.socket.create_connection(("127.0.0.1", tree.port))
        t0 = time.monotonic()
        with gevent.Timeout(5):
            assert idle.recv(1024) == b""        # closed by the server
        assert 0.2 < time.monotonic() - t0 < 3
        idle.close()
        slow = gevent.socket.create_connection(("127.0.0.1", tree.port))
        slow.sendall(b"GET /app/echo/ HTTP/1.1\r\n")
        with gevent.Timeout(5):
            assert slow.recv(1024) == b""
        slow.close()
    finally:
        tree.stop()


def test_max_keep_alive_requests_closes_with_connection_close(tmp_path):
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo/*"])]}},
                connector_attrs={"max_keep_alive_requests": 2})
    try:
        req = b"GET /app/echo/ HTTP/1.1\r\nHost: localhost\r\n\r\n"
        data = raw_exchange(tree.port, req * 3)       # pipelined; the server stops after two
        first = parse_response(data)
        second = parse_response(first[3])
        assert first[0] == 200 and "connection" not in first[1]
        assert second[0] == 200 and second[1]["connection"] == "close" and second[3] == b""
    finally:
        tree.stop()


def test_streaming_uses_chunked_encoding(tree):
    status, headers, body = get(tree.port, "/app/stream")
    assert headers.get("transfer-encoding") == "chunked"
    assert body == b"part0;part1;part2;"


def test_post_form_parameters_and_max_post_size(tmp_path):
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo/*"])]}},
                connector_attrs={"max_post_size": 20})
    try:
        small = b"a=1&b=%C3%A9"
        status, _, body = get(tree.port, "/app/echo/", method="POST", body=small,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert body.decode() == "form=[('a', ['1']), ('b', ['é'])]"
        big = b"a=" + b"x" * 100
        status, _, body = get(tree.port, "/app/echo/", method="POST", body=big,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200 and body == b"form=[]"
    finally:
        tree.stop()


def test_port_in_use_is_a_clear_lifecycle_error(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        tree = Tree(tmp_path, start=False, connector_attrs={"port": busy.getsockname()[1]})
        with pytest.raises(LifecycleError, match="Address already in use: 127.0.0.1:%d" % busy.getsockname()[1]):
            tree.server.start()
        tree.server.stop()
    finally:
        busy.close()


def test_stop_does_not_wait_for_idle_keep_alive_clients(tmp_path):
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo/*"])]}})
    idle = gevent.socket.create_connection(("127.0.0.1", tree.port))
    idle.sendall(b"GET /app/echo/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200")
    wait_for(lambda: tree.connector.wsgi_server.idle)
    t0 = time.monotonic()
    tree.stop()
    assert time.monotonic() - t0 < 1.5
    idle.close()


def test_ajp_connector_without_secret_is_kept_but_not_started(tmp_path, caplog):
    # Tomcat 9.0.31+: secretRequired (the default) and no secret fails that connector, not the server
    # (tests/connector/test_ajp_connector.py has the connector that does start)
    tree = Tree(tmp_path, start=False, connector_attrs={"protocol": "AJP/1.3"})
    with caplog.at_level("WARNING"):
        tree.server.start()
    try:
        assert "AJP" in caplog.text and "secretRequired" in caplog.text and tree.connector.bound_port is None
    finally:
        tree.stop()


def test_protocol_class_names_mean_http11():
    c = Connector()
    c.protocol = "org.apache.coyote.http11.Http11NioProtocol"
    assert not c.is_ajp


def test_keep_alive_timeout_closes_idle_kept_alive_connections(tmp_path):
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo/*"])]}},
                connector_attrs={"connection_timeout": 5000, "keep_alive_timeout": 200})
    try:
        sock = gevent.socket.create_connection(("127.0.0.1", tree.port))
        sock.sendall(b"GET /app/echo/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        with gevent.Timeout(5):
            assert sock.recv(1024) == b""
        assert time.monotonic() - t0 < 3       # keepAliveTimeout, not the 5 s connectionTimeout
        sock.close()
    finally:
        tree.stop()


def test_max_parameter_count_and_server_header_and_options_star(tmp_path):
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo/*"])]}},
                connector_attrs={"max_parameter_count": 2, "server": "Apache-Coyote/1.1"})
    try:
        status, headers, body = get(tree.port, "/app/echo/?a=1&b=2&q=3")
        assert body == b"GET /echo/ q=" and headers["server"] == "Apache-Coyote/1.1"
        status, headers, _ = get(tree.port, "*", method="OPTIONS")
        assert status == 200 and "GET" in headers["allow"]
    finally:
        tree.stop()


def test_request_api_views(tmp_path):
    seen = {}

    class Inspect(HttpServlet):
        def do_get(self, request, response):
            seen.update(server_name=request.server_name, server_port=request.server_port,
                        url=request.request_url, headers=request.headers, local=request.local_addr,
                        remote_port=request.remote_port, path=request.path, ctx=request.context_path)
            response.write("ok")
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("i", Inspect(), ["/i/*"])]}})
    try:
        get(tree.port, "/app/i/x%20y", host="example.test:8123", headers={"X-A": "1"})
        assert seen["server_name"] == "example.test" and seen["server_port"] == 8123
        assert seen["url"] == "http://example.test:8123/app/i/x%20y"
        assert seen["headers"]["x-a"] == "1" and seen["headers"]["host"] == "example.test:8123"
        assert seen["local"] == "127.0.0.1" and seen["remote_port"] > 0
        assert seen["path"] == "/i/x y" and seen["ctx"] == "/app"
    finally:
        tree.stop()


def test_head_of_a_streamed_response_has_no_body_or_chunks(tree):
    data = raw_exchange(tree.port, b"HEAD /app/stream HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and rest == b""


def test_idle_connections_do_not_use_up_max_threads(tmp_path):
    """maxThreads bounds requests in progress, not open connections (Tomcat NIO's model)."""
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo/*"])]}},
                connector_attrs={"max_threads": 2})
    idle = [gevent.socket.create_connection(("127.0.0.1", tree.port)) for _ in range(6)]
    try:
        for s in idle[:3]:
            s.sendall(b"GET /app/echo/ HTTP/1.1\r\nHost: loc")     # half a request each
        t0 = time.monotonic()
        assert get(tree.port, "/app/echo/x")[0] == 200
        assert time.monotonic() - t0 < 1.0
    finally:
        for s in idle:
            s.close()
        tree.stop()


def test_max_connections_bounds_the_connection_pool(tmp_path):
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo/*"])]}},
                connector_attrs={"max_connections": 3})
    try:
        assert tree.connector.pool.size == 3
        assert get(tree.port, "/app/echo/")[0] == 200
    finally:
        tree.stop()


def test_a_request_in_progress_does_not_block_others(tmp_path):
    blocking = Blocking()
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo/*"]),
                                                       ("block", blocking, ["/block"])]}})
    try:
        held = gevent.spawn(get, tree.port, "/app/block")
        assert blocking.entered.wait(5)
        assert get(tree.port, "/app/echo/meanwhile")[0] == 200      # served while /block is held
        assert not held.ready()
        blocking.release.set()
        assert held.get(timeout=5)[2] == b"released"
    finally:
        tree.stop()
