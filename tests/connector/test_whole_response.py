"""The container's buffered responses leave through PycatHandler.send_whole, not WSGI's
start_response + write: over real sockets, the bytes must be those pywsgi sends for the same
status and headers (the reference is the bare transport serving a WSGI callable with them, as
bench/http.py's baseline does), and every check of start_response's must still refuse what it
refused (CR/LF injection, non-latin-1 text), with a valid twin of each request answered 200."""
import re

import gevent
import gevent.pool
import pytest

from pycat.connector.handler import PycatHandler, PycatWSGIServer
from pycat.webapp.servlet import HttpServlet

from pycat_harness import Tree, parse_response, raw_exchange

pytestmark = pytest.mark.timeout(30)

BODY = b"Hello, World!\n"


class Hello(HttpServlet):
    def do_get(self, request, response):
        response.content_type = "text/plain"
        response.write(BODY)


class Typed(HttpServlet):
    """Content-Type from the query string (percent-decoding is not needed for these tests)."""

    def do_get(self, request, response):
        value = request.get_parameter("t")
        response.content_type = value
        response.write(b"typed")


class Reason(HttpServlet):
    def do_get(self, request, response):
        response.set_status(201, request.get_parameter("r"))
        response.write(b"made")


class Header(HttpServlet):
    def do_get(self, request, response):
        response.set_header(request.get_parameter("n"), request.get_parameter("v"))
        response.content_type = "text/plain"
        response.write(b"header")


def hello_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path, contexts={"": {"servlets": [("hello", Hello(), ["/hello"]), ("typed", Typed(), ["/typed"]),
                                                   ("reason", Reason(), ["/reason"]),
                                                   ("header", Header(), ["/header"])]}},
             connector_attrs={"max_keep_alive_requests": 3})
    yield t
    t.stop()


@pytest.fixture
def transport():
    """pycat's HTTP layer without a container, serving the bare callable (the bench's baseline)."""
    server = PycatWSGIServer(("127.0.0.1", 0), application=hello_app, spawn=gevent.pool.Pool(10), log=None)
    server.max_keep_alive_requests = 3
    server.start()
    yield server
    server.stop(timeout=1)


@pytest.fixture
def direct(monkeypatch):
    """How many responses PycatHandler.send_whole sent (so each test knows which way was taken)."""
    sent = []
    original = PycatHandler.send_whole

    def counting(self, *args):
        done = original(self, *args)
        sent.append(done)
        return done

    monkeypatch.setattr(PycatHandler, "send_whole", counting)
    return sent


def dated(data):
    """The wire bytes with each Date value blanked (the two servers answer in different seconds)."""
    assert data.count(b"\r\nDate: ") == data.count(b"HTTP/1.1 "), data
    return re.sub(rb"\r\nDate: [^\r]+", b"\r\nDate: -", data)


REQUESTS = {
    "1.1": b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "1.1 close": b"GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "1.0": b"GET %s HTTP/1.0\r\n\r\n",
    "1.0 keep-alive": b"GET %s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
}


@pytest.mark.parametrize("kind", sorted(REQUESTS))
def test_same_bytes_as_the_wsgi_way(tree, transport, direct, kind):
    # three requests on one connection: maxKeepAliveRequests=3 ends it with "Connection: close"
    # on the last answer (HTTP/1.1), or keep-alive/close as HTTP/1.0 asks
    request = REQUESTS[kind]
    ours = dated(raw_exchange(tree.port, request % b"/hello" * 3))
    assert direct and all(direct)          # the container's answers took the direct way...
    reference = dated(raw_exchange(transport.server_port, request % b"/hello" * 3))
    assert ours == reference               # ...and sent what pywsgi sends for a WSGI app
    assert ours.startswith(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n")
    assert ours.endswith(BODY)


def test_head_has_the_get_headers_and_no_body(tree):
    get = dated(raw_exchange(tree.port, REQUESTS["1.1 close"] % b"/hello"))
    head = dated(raw_exchange(tree.port, REQUESTS["1.1 close"].replace(b"GET", b"HEAD") % b"/hello"))
    assert get == head + BODY


@pytest.mark.parametrize("bad, good", [
    (b"text/plain%0D%0AX-Injected:%20yes", b"text/plain;%20a=b"),      # CR/LF in a value
    (b"text/plain;%20n=%E2%9C%93", b"text/plain;%20n=%C3%A9"),          # not latin-1 / latin-1
])
def test_start_response_checks_still_refuse(tree, bad, good):
    status, headers, body, _ = parse_response(raw_exchange(tree.port, REQUESTS["1.1 close"] % (b"/typed?t=" + good)))
    assert (status, body) == (200, b"typed")
    data = raw_exchange(tree.port, REQUESTS["1.1 close"] % (b"/typed?t=" + bad))
    status, headers, body, _ = parse_response(data)
    assert status == 500 and b"X-Injected" not in data and b"typed" not in data


def test_an_app_reason_phrase_is_checked_too(tree):
    status, _, body, _ = parse_response(raw_exchange(tree.port, REQUESTS["1.1 close"] % b"/reason?r=Made"))
    assert (status, body) == (201, b"made")
    data = raw_exchange(tree.port, REQUESTS["1.1 close"] % b"/reason?r=Made%0D%0AX-Injected:%20yes")
    assert parse_response(data)[0] == 500 and b"X-Injected" not in data


def test_headers_pywsgi_reads_take_the_wsgi_way(tree, direct):
    # an app's own Connection: close is honoured (the connection ends) and Date is not doubled
    data = raw_exchange(tree.port, REQUESTS["1.1"] % b"/header?n=Connection&v=close" * 2)
    assert data.count(b"HTTP/1.1 200 ") == 1 and b"\r\nConnection: close\r\n" in data
    data = raw_exchange(tree.port, REQUESTS["1.1 close"] % b"/header?n=Date&v=Thu,%2001%20Jan%201970%2000:00:00%20GMT")
    assert data.count(b"\r\nDate: ") == 1 and b"Date: Thu, 01 Jan 1970 00:00:00 GMT" in data
    assert direct == []
    # positive control: any other header goes the direct way and keeps the connection open
    data = raw_exchange(tree.port, REQUESTS["1.1"] % b"/header?n=X-A&v=1" * 2 + REQUESTS["1.1 close"] % b"/hello")
    assert data.count(b"HTTP/1.1 200 ") == 3 and data.count(b"\r\nX-A: 1\r\n") == 2
    assert direct == [True, True, True]
