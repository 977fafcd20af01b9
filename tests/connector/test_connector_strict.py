"""HTTP parsing as strict as Tomcat 10, over raw sockets: each malformed request gets 400 (and
the connection closes), and the same request made valid gets 200 (the positive control in the
same test). Then: malformed bodies, maxHeaderCount, and early answers in the access log."""
import logging
import socket

import gevent
import gevent.socket
import pytest

from pycat.attrs import set_property
from pycat.connector.http_parse import _HOST, _REQUEST_LINE, parse_header_lines
from pycat.valves.access_log import AccessLogValve
from pycat.webapp.servlet import HttpServlet

from pycat_harness import Tree, parse_response, raw_exchange, wait_for

pytestmark = pytest.mark.timeout(30)


class Echo(HttpServlet):
    def do_get(self, request, response):
        response.content_type = "text/plain"
        response.write("ok %s" % request.get_header("x-v", ""))

    def do_post(self, request, response):
        response.content_type = "text/plain"
        response.write_bytes(b"body=" + request.read_body())


class Form(HttpServlet):
    def do_post(self, request, response):
        response.write("params=%s failed=%s" % (sorted(request.parameters.items()),
                                                request.get_attribute("pycat.parameters.parse_failed")))


class Boom(HttpServlet):
    def do_get(self, request, response):
        raise RuntimeError("servlet failure")


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo"]), ("form", Form(), ["/form"]),
                                                       ("boom", Boom(), ["/boom"])]}},
             connector_attrs={"connection_timeout": 3000})
    yield t
    t.stop()


def exchange(port, data):
    """Send, read until the server closes; (status, body). A server that keeps waiting fails the test."""
    status, _, body, _ = parse_response(raw_exchange(port, data))
    return status, body


def both(port, bad, good):
    """The malformed request → 400 and a closed connection; its valid twin → 200."""
    assert exchange(port, good)[0] == 200, good
    assert exchange(port, bad)[0] == 400, bad


# -- request line -----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [
    b"GET\x0b/app/echo HTTP/1.1",          # vertical tab as a separator
    b"GET\x1c/app/echo HTTP/1.1",          # file separator (str.split() splits on it)
    b"GET /app/echo\x0cHTTP/1.1",
    b"GET /app/echo\x1fHTTP/1.1",
    b"GET\xa0/app/echo HTTP/1.1",          # latin-1 NBSP
    b"G<>T /app/echo HTTP/1.1",            # method with non-token characters
    b"GE(T /app/echo HTTP/1.1",
    b"GET /app/e\x01cho HTTP/1.1",         # control character in the target
    b"GET /app/e\x7fcho HTTP/1.1",
    b"GET /app/echo HTTP/1.1 ",            # trailing space after the version
    b"GET /app/echo\rHTTP/1.1",            # bare CR
    b"GET /app/echo HTTP/1.2",
    b"GET /app/echo http/1.1",
])
def test_malformed_request_line_is_400(tree, bad):
    both(tree.port, bad + b"\r\nHost: localhost\r\nConnection: close\r\n\r\n",
         b"GET /app/echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")


def test_request_line_tolerance_as_tomcat(tree):
    # runs of SP / HTAB between the parts, and a bare LF line end, are accepted (Tomcat does)
    for line in (b"GET\t/app/echo\tHTTP/1.1\r\n", b"GET   /app/echo  HTTP/1.1\r\n", b"GET /app/echo HTTP/1.1\n"):
        status, body = exchange(tree.port, line + b"Host: localhost\r\nConnection: close\r\n\r\n")
        assert (status, body) == (200, b"ok "), line
    assert exchange(tree.port, b"GET\x0b/app/echo HTTP/1.1\r\nHost: localhost\r\n\r\n")[0] == 400


def test_an_empty_line_before_a_request_line_is_skipped(tree):
    """RFC 9112 2.2, as Tomcat: a CRLF after a POST body (old clients) does not make a 400."""
    post = b"POST /app/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc"
    get_ = b"GET /app/echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    first = parse_response(raw_exchange(tree.port, post + b"\r\n" + get_))
    assert first[:3:2] == (200, b"body=abc") and parse_response(first[3])[:3:2] == (200, b"ok ")
    # but a line that is not empty is no request line
    first = parse_response(raw_exchange(tree.port, post + b" \r\n" + get_))
    assert first[0] == 200 and parse_response(first[3])[0] == 400


def test_request_line_pattern_is_pure():
    assert _REQUEST_LINE.fullmatch("GET /a?b=c HTTP/1.1\r\n").groups() == ("GET", "/a?b=c", "HTTP/1.1")
    assert _REQUEST_LINE.fullmatch("M-SEARCH * HTTP/1.0\n").groups() == ("M-SEARCH", "*", "HTTP/1.0")
    for bad in ("GET /a HTTP/1.1", "GET\x0b/a HTTP/1.1\r\n", "GET /a b HTTP/1.1\r\n", "/a HTTP/1.1\r\n",
                "GET /a HTTP/1.1\r\r\n", " GET /a HTTP/1.1\r\n", "GET /a\x00 HTTP/1.1\r\n"):
        assert _REQUEST_LINE.fullmatch(bad) is None, bad


# -- header values ------------------------------------------------------------------------------
@pytest.mark.parametrize("bad_value", [b"a\x00b", b"a\rb", b"a\r", b"a\x01b", b"a\x1bb", b"a\x7fb", b"a\x0bb"])
def test_control_characters_in_header_values_are_400(tree, bad_value):
    template = b"GET /app/echo HTTP/1.1\r\nHost: localhost\r\nX-V: %s\r\nConnection: close\r\n\r\n"
    both(tree.port, template % bad_value, template % b"a\tb")
    # obs-text (bytes >= 0x80) stays allowed, as in Tomcat
    assert exchange(tree.port, template % b"caf\xe9") == (200, "ok café".encode())   # read as latin-1


def test_header_block_check_is_pure():
    assert parse_header_lines([b"A: x\ty\r\n", b"B: \xe9\n"]) == [("A", "x\ty"), ("B", "\xe9")]
    for line in (b"A: x\x00\r\n", b"A: x\ry\r\n", b"A: x\r\r\n", b"A: \x7f\r\n"):
        with pytest.raises(ValueError):
            parse_header_lines([b"Host: a\r\n", line])


# -- Host -------------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["localhost", "localhost:8080", "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:8080",
                                  "example.com.", "a-b.c-d.example", "xn--caf-dma.example", "EXAMPLE.COM", "", "a:",
                                  "my_service", "my_service:8080", "web_1.compose_default"])
def test_valid_host_values(host):
    # "_" is accepted, unlike Tomcat: Docker/Compose service names carry it
    assert _HOST.fullmatch(host), host


@pytest.mark.parametrize("host", ["exa$mple.com", "-a.com", "a-.com", "a..b", ".a", "a b", "a:b", "a:123456",
                                  "[::1", "::1", "a/b", "a@b", "a,b", "a, b", "caf\xe9.example", "[::1]x", ":80"])
def test_invalid_host_values(host):
    assert _HOST.fullmatch(host) is None, host


def test_host_pattern_is_linear_on_long_input():
    # a hostile 8 KiB label must not make the regex backtrack for long (bounded by maxHttpHeaderSize anyway)
    assert _HOST.fullmatch("a" * 8000 + "-") is None
    assert _HOST.fullmatch("a-" * 4000 + "a")


@pytest.mark.parametrize("bad_host", [b"exa$mple.com", b"a..b", b"a:b", b"[::1", b"a/b"])
def test_invalid_host_header_is_400(tree, bad_host):
    template = b"GET /app/echo HTTP/%s\r\nHost: %s\r\nConnection: close\r\n\r\n"
    both(tree.port, template % (b"1.1", bad_host), template % (b"1.1", b"example.com:8080"))
    # also for HTTP/1.0, where Host is optional: present and invalid is still a 400
    both(tree.port, template % (b"1.0", bad_host), template % (b"1.0", b"localhost"))


def test_two_host_headers_or_none_is_400(tree):
    assert exchange(tree.port, b"GET /app/echo HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n")[0] == 400
    assert exchange(tree.port, b"GET /app/echo HTTP/1.1\r\n\r\n")[0] == 400
    assert exchange(tree.port, b"GET /app/echo HTTP/1.0\r\n\r\n")[0] == 200     # 1.0: Host is optional
    assert exchange(tree.port, b"GET /app/echo HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n")[0] == 200


# -- framing ----------------------------------------------------------------------------------
def test_transfer_encoding_on_http10_is_400(tree):
    chunked = b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    bad = b"POST /app/echo HTTP/1.0\r\nHost: localhost\r\n" + chunked
    good = b"POST /app/echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + chunked
    both(tree.port, bad, good)
    assert exchange(tree.port, good) == (200, b"body=abc")
    assert exchange(tree.port, b"POST /app/echo HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc") == (200, b"body=abc")


@pytest.mark.parametrize("length", [b"99999999999999999999", b"9223372036854775808", b"1" * 5000])
def test_content_length_beyond_a_long_is_400_at_once(tree, length):
    # before: accepted, and the servlet's read waited for a body that never comes
    bad = b"POST /app/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: %s\r\n\r\nabc" % length
    good = b"POST /app/echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc"
    both(tree.port, bad, good)


def test_largest_content_length_is_accepted(tree):
    """2**63-1 (and leading zeros) is a valid length: the headers pass; the servlet does not read the
    body, the client half-closes, the answer is the servlet's."""
    for length in (b"9223372036854775807", b"0000000000000000000000000003"):
        sock = gevent.socket.create_connection(("127.0.0.1", tree.port))
        try:
            sock.sendall(b"GET /app/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: %s\r\n\r\nabc" % length)
            sock.shutdown(socket.SHUT_WR)
            data = b""
            with gevent.Timeout(5):
                while b"ok" not in data:
                    chunk = sock.recv(65536)
                    assert chunk, data
                    data += chunk
            assert data.startswith(b"HTTP/1.1 200"), data
        finally:
            sock.close()


def test_malformed_chunked_body_is_400_without_a_traceback(tree, caplog):
    good = (b"POST /app/echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n")
    follow = b"GET /app/echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    # positive control: a good chunked body, and the pipelined request after it, are both answered
    first = parse_response(raw_exchange(tree.port, good + follow))
    assert first[:3:2] == (200, b"body=abc") and parse_response(first[3])[:3:2] == (200, b"ok ")
    # positive control of the log check below: a servlet's own failure is a 500 with its stack trace
    with caplog.at_level(logging.INFO):
        assert exchange(tree.port, b"GET /app/boom HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")[0] == 500
    assert [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    bad_bodies = [b"ZZ\r\nabc\r\n0\r\n\r\n",            # chunk size not hex
                  b"3\r\nabcXY0\r\n\r\n",                 # no CRLF after the chunk data
                  b"3;" + b"e" * 9000 + b"\r\nabc\r\n"]   # endless chunk extension
    for body in bad_bodies:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            data = raw_exchange(tree.port, good.split(b"\r\n\r\n")[0] + b"\r\n\r\n" + body + follow)
        status, _, _, rest = parse_response(data)
        assert status == 400, body[:20]
        assert rest == b""                      # closed: the pipelined request is not read as one
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
        assert "Traceback" not in caplog.text and len(caplog.records) <= 3, caplog.text


def test_body_ending_early_is_400(tree):
    sock = gevent.socket.create_connection(("127.0.0.1", tree.port))
    try:
        sock.sendall(b"POST /app/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc")
        sock.shutdown(socket.SHUT_WR)
        data = b""
        with gevent.Timeout(5):
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        assert parse_response(data)[0] == 400
    finally:
        sock.close()
    good = b"POST /app/echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc"
    assert exchange(tree.port, good) == (200, b"body=abc")


def test_malformed_chunked_form_leaves_the_parameters_out(tree):
    head = (b"POST /app/form HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n")
    status, body = exchange(tree.port, head + b"3\r\na=1\r\n0\r\n\r\n")
    assert (status, body) == (200, b"params=[('a', ['1'])] failed=None")
    status, body = exchange(tree.port, head + b"3\r\na=1XX0\r\n\r\n")
    assert (status, body) == (200, b"params=[] failed=badBody")     # as Tomcat's parseParameters
    # the same for a multipart form
    head = head.replace(b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=XB")
    part = b'--XB\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--XB--\r\n'
    status, body = exchange(tree.port, head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(part), part))
    assert (status, body) == (200, b"params=[('a', ['1'])] failed=None")
    status, body = exchange(tree.port, head + b"%x\r\n%sXX" % (len(part), part))
    assert (status, body) == (200, b"params=[] failed=badBody")


# -- maxHeaderCount ---------------------------------------------------------------------------
def headers_request(count):
    """A GET with exactly ``count`` headers (Host and Connection included)."""
    extra = b"".join(b"X-H%d: v\r\n" % i for i in range(count - 2))
    return b"GET /app/echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + extra + b"\r\n"


def test_max_header_count_default_is_100(tree):
    assert tree.connector.max_header_count == 100
    both(tree.port, headers_request(101), headers_request(100))


def test_max_header_count_is_a_connector_attribute(tmp_path):
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo"])]}}, start=False)
    assert set_property(tree.connector, "maxHeaderCount", "5")        # the server.xml name
    tree.server.start()
    try:
        both(tree.port, headers_request(6), headers_request(5))
    finally:
        tree.stop()
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo"])]}},
                connector_attrs={"max_header_count": -1})
    try:
        assert exchange(tree.port, headers_request(300))[0] == 200      # -1: unlimited
    finally:
        tree.stop()


# -- early answers in the access log --------------------------------------------------------------
def access_log(valve):
    valve.flush()
    with open(valve.current_path, encoding="utf-8") as fh:
        return fh.read()


def start_logged_tree(tmp_path, where):
    valve = AccessLogValve()
    valve.pattern = '"%r" %s %b "%{User-Agent}i"'
    kwargs = {"engine_valves": [valve]} if where == "engine" else {"host_valves": [valve]} if where == "host" \
        else {}
    contexts = {"/app": {"servlets": [("echo", Echo(), ["/echo"])]}}
    if where == "root":
        # the ROOT context's valve logs the ROOT's requests, and the early answers: put /app under it
        contexts = {"": {"valves": [valve], "servlets": [("echo", Echo(), ["/app/echo"])]}}
    return Tree(tmp_path, contexts=contexts, **kwargs), valve


@pytest.mark.parametrize("where", ["engine", "host", "root"])
def test_early_answers_reach_the_access_log(tmp_path, where):
    tree, valve = start_logged_tree(tmp_path, where)
    try:
        ua = b"User-Agent: probe/1\r\n"
        cases = [
            (b"GET /app/echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + ua + b"\r\n", 200,
             '"GET /app/echo HTTP/1.1" 200 3 "probe/1"'),            # positive control: the pipeline logs
            (b"G<>T /app/echo HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, '"- - -" 400 11 "-"'),
            (b"GET /app/echo HTTP/1.1\r\nHost: bad$host\r\n" + ua + b"\r\n", 400,
             '"GET /app/echo HTTP/1.1" 400 11 "probe/1"'),
            (b"GET /app/echo?q=1 HTTP/1.1\r\nHost: a\r\nX-V: \x00\r\n\r\n", 400,
             '"GET /app/echo?q=1 HTTP/1.1" 400 11 "-"'),
            (b"GET /app/%2e%2e/%2e%2e/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + ua + b"\r\n", 400,
             '"GET /app/%2e%2e/%2e%2e/x HTTP/1.1" 400 11 "probe/1"'),   # the adapter's URI check
            (b"GET /app/echo HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431,
             '"GET /app/echo HTTP/1.1" 431 35 "-"'),
            (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414, '"- - -" 414 20 "-"'),
        ]
        for data, status, _ in cases:
            assert parse_response(raw_exchange(tree.port, data))[0] == status, data[:40]
        wait_for(lambda: access_log(valve).count("\n") >= len(cases), what="access log lines")
        lines = access_log(valve).splitlines()
        assert lines == [line for _, _, line in cases]      # each once, in order, nothing else
    finally:
        tree.stop()


def test_early_answer_without_any_access_log_is_still_answered(tmp_path):
    tree = Tree(tmp_path, contexts={"/app": {"servlets": [("echo", Echo(), ["/echo"])]}})
    try:
        both(tree.port, b"G<>T /app/echo HTTP/1.1\r\nHost: a\r\n\r\n",
             b"GET /app/echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    finally:
        tree.stop()


def test_keep_alive_then_bad_request_logs_the_bad_one_not_the_previous(tmp_path):
    """The handler object serves many requests: state of the previous one must not leak into the
    log line of an early 400 (its request line was not parsed)."""
    tree, valve = start_logged_tree(tmp_path, "host")
    try:
        data = (b"GET /app/echo?first HTTP/1.1\r\nHost: localhost\r\n\r\n"
                b"GET\x0b/second HTTP/1.1\r\nHost: localhost\r\n\r\n")
        first = parse_response(raw_exchange(tree.port, data))
        assert first[0] == 200 and parse_response(first[3])[0] == 400
        wait_for(lambda: access_log(valve).count("\n") >= 2, what="access log lines")
        assert access_log(valve).splitlines() == ['"GET /app/echo?first HTTP/1.1" 200 3 "-"', '"- - -" 400 11 "-"']
    finally:
        tree.stop()


def test_hostile_header_flood_does_not_stop_the_server(tree):
    bad = [b"GET /app/echo HTTP/1.1\r\nHost: localhost\r\nX: \x00\r\n\r\n",
           b"\x16\x03\x01\x02\x00\x01\x00" * 20 + b"\r\n",      # a TLS hello, on a line
           b"G\x00T / HTTP/1.1\r\n\r\n", headers_request(500)]
    for data in bad * 5:
        assert parse_response(raw_exchange(tree.port, data))[0] in (400, 431)
    assert exchange(tree.port, headers_request(3)) == (200, b"ok ")
