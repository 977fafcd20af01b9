"""Request header parsing (pure) and the framing rules enforced on the wire."""
import pytest

from pycat.connector.http_parse import Headers, InvalidRequest, parse_header_lines
from pycat.webapp.servlet import HttpServlet

from pycat_harness import Tree, parse_response, raw_exchange


def test_parse_lines_and_lookup():
    pairs = parse_header_lines([b"Host: a\r\n", b"X-Multi: 1\r\n", b"Cookie: a=1\r\n", b"x-multi: 2\r\n",
                                b"Cookie: b=2\r\n", b"X-Fold: one\r\n", b"\t two\r\n", b"Empty:\r\n"])
    assert pairs == [("Host", "a"), ("X-Multi", "1"), ("Cookie", "a=1"), ("x-multi", "2"),
                     ("Cookie", "b=2"), ("X-Fold", "one two"), ("Empty", "")]
    h = Headers(pairs)
    assert h.get("HOST") == "a" and h.get("x-multi") == "1, 2" and h.get("cookie") == "a=1; b=2"
    assert "x-fold" in h and h.typeheader is None
    del h["X-MULTI"]
    assert h.get("x-multi") is None and all(n.lower() != "x-multi" for n, _ in h.pairs)
    assert h.headers[0] == "Host: a\r\n"


@pytest.mark.parametrize("line", [b"no colon\r\n", b": empty name\r\n", b"Bad Name: x\r\n", b"Bad\x01: x\r\n",
                                  b"Tab\t: x\r\n"])
def test_bad_header_lines_are_rejected(line):
    with pytest.raises(InvalidRequest):
        parse_header_lines([line])


def test_continuation_first_is_rejected():
    with pytest.raises(InvalidRequest):
        parse_header_lines([b" leading fold\r\n"])


class Body(HttpServlet):
    def do_post(self, request, response):
        response.write(request.read_body())

    def do_get(self, request, response):
        response.write("ok")


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path, contexts={"": {"servlets": [("b", Body(), ["/b"])]}})
    yield t
    t.stop()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("data", [
    b"GET /b HTTP/1.1\r\n\r\n",                                              # no Host
    b"GET /b HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",                       # two Hosts
    b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabc",
    # both lengths: a smuggling attempt (RFC 9112 6.3), even when the chunked body is well formed
    b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
])
def test_framing_violations_get_400(tree, data):
    assert parse_response(raw_exchange(tree.port, data))[0] == 400


@pytest.mark.timeout(20)
def test_chunked_request_body_and_http10(tree):
    data = (b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert parse_response(raw_exchange(tree.port, data))[2] == b"abcde"
    status, headers, body, _ = parse_response(raw_exchange(tree.port, b"GET /b HTTP/1.0\r\n\r\n"))
    assert (status, body) == (200, b"ok")
