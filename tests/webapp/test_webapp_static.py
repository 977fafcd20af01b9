"""DefaultServlet over real sockets: validators, ranges, HEAD, MIME, listings, welcome files."""
import os

import pytest

from pycat_harness import Tree, get, raw_exchange

pytestmark = pytest.mark.timeout(30)

BODY = b"0123456789" * 10


@pytest.fixture
def tree(tmp_path):
    files = {"data.txt": BODY, "style.css": "body{}", "page.html": "<p>x</p>", "blob.unknownext": b"\x00\x01",
             "WEB-INF/web.xml": "<web-app/>", "WEB-INF/secret.txt": "secret", "META-INF/context.xml": "<Context/>",
             "dir/index.html": "welcome", "empty/.keep": "", "big.bin": os.urandom(200000)}
    t = Tree(tmp_path, contexts={"/app": {"files": files}})
    yield t
    t.stop()


def test_serves_a_file_with_validators(tree):
    status, headers, body = get(tree.port, "/app/data.txt")
    assert status == 200 and body == BODY
    assert headers["content-type"].startswith("text/plain")
    assert headers["content-length"] == "100"
    assert headers["etag"].startswith('W/"100-')
    assert headers["last-modified"].endswith("GMT")
    assert headers["accept-ranges"] == "bytes"


def test_mime_types_from_web_xml_and_mimetypes(tree):
    assert get(tree.port, "/app/style.css")[1]["content-type"] == "text/css"
    assert get(tree.port, "/app/page.html")[1]["content-type"] == "text/html"
    assert "content-type" not in get(tree.port, "/app/blob.unknownext")[1]


def test_if_none_match_and_if_modified_since_give_304(tree):
    _, headers, _ = get(tree.port, "/app/data.txt")
    status, h304, body = get(tree.port, "/app/data.txt", headers={"If-None-Match": headers["etag"]})
    assert status == 304 and body == b"" and h304["etag"] == headers["etag"]
    assert get(tree.port, "/app/data.txt", headers={"If-None-Match": '"other"'})[0] == 200
    assert get(tree.port, "/app/data.txt", headers={"If-Modified-Since": headers["last-modified"]})[0] == 304
    assert get(tree.port, "/app/data.txt",
               headers={"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"})[0] == 200
    assert get(tree.port, "/app/data.txt", headers={"If-Match": '"nope"'})[0] == 412


def test_single_range_gives_206(tree):
    status, headers, body = get(tree.port, "/app/data.txt", headers={"Range": "bytes=10-19"})
    assert status == 206 and body == BODY[10:20]
    assert headers["content-range"] == "bytes 10-19/100" and headers["content-length"] == "10"
    assert get(tree.port, "/app/data.txt", headers={"Range": "bytes=-5"})[2] == BODY[-5:]
    assert get(tree.port, "/app/data.txt", headers={"Range": "bytes=95-"})[2] == BODY[95:]
    assert get(tree.port, "/app/data.txt", headers={"Range": "bytes=90-500"})[2] == BODY[90:]


@pytest.mark.parametrize("bad", ["bytes=200-300", "bytes=abc", "bytes=5-1", "items=0-1", "bytes=-0"])
def test_bad_or_unsatisfiable_range_gives_416(tree, bad):
    status, headers, _ = get(tree.port, "/app/data.txt", headers={"Range": bad})
    assert status == 416 and headers["content-range"] == "bytes */100"


def test_several_ranges_give_the_whole_file(tree):
    status, _, body = get(tree.port, "/app/data.txt", headers={"Range": "bytes=0-1,5-6"})
    assert status == 200 and body == BODY


def test_if_range_mismatch_ignores_range(tree):
    status, _, body = get(tree.port, "/app/data.txt", headers={"Range": "bytes=0-1", "If-Range": '"old"'})
    assert status == 200 and body == BODY


def test_head_has_headers_and_no_body(tree):
    data = raw_exchange(tree.port, b"HEAD /app/data.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"200 OK" in head and b"Content-Length: 100" in head and rest == b""


def test_large_file_streams_intact(tree, tmp_path):
    expected = (tmp_path / "webapps" / "app" / "big.bin").read_bytes()
    status, headers, body = get(tree.port, "/app/big.bin")
    assert status == 200 and body == expected and headers["content-length"] == str(len(expected))
    status, _, body = get(tree.port, "/app/big.bin", headers={"Range": "bytes=100000-199999"})
    assert status == 206 and body == expected[100000:200000]


@pytest.mark.parametrize("path", ["/app/WEB-INF/web.xml", "/app/WEB-INF/secret.txt", "/app/web-inf/secret.txt",
                                  "/app/META-INF/context.xml", "/app/WEB-INF/", "/app/WEB-INF",
                                  "/app/./WEB-INF/secret.txt", "/app/dir/../WEB-INF/secret.txt",
                                  "/app/%57EB-INF/secret.txt"])
def test_web_inf_and_meta_inf_are_404(tree, path):
    status, _, body = get(tree.port, path)
    assert status == 404 and b"secret" not in body


def test_directory_redirects_then_serves_welcome_file(tree):
    status, headers, _ = get(tree.port, "/app/dir?x=1")
    assert status == 302 and headers["location"] == "/app/dir/?x=1"
    assert get(tree.port, "/app/dir/")[2] == b"welcome"


def test_context_root_redirects_to_slash(tree):
    status, headers, _ = get(tree.port, "/app")
    assert status == 302 and headers["location"] == "/app/"


def test_no_directory_listing_by_default(tree):
    assert get(tree.port, "/app/empty/")[0] == 404
    assert get(tree.port, "/app/")[0] == 404


def test_listing_when_enabled(tmp_path):
    t = Tree(tmp_path, contexts={"/app": {"files": {"a.txt": "a", "<b>.txt": "b", "WEB-INF/x": "x"}}}, start=False)
    (tmp_path / "webapps" / "app" / "WEB-INF" / "web.xml").write_text(
        '<web-app><servlet><servlet-name>default</servlet-name>'
        '<servlet-class>pycat.webapp.default_servlet:DefaultServlet</servlet-class>'
        '<init-param><param-name>listings</param-name><param-value>true</param-value></init-param>'
        '</servlet></web-app>')
    t.server.start()
    try:
        status, _, body = get(t.port, "/app/")
        assert status == 200 and b"a.txt" in body and b"&lt;b&gt;.txt" in body and b"WEB-INF" not in body
    finally:
        t.stop()


def test_missing_file_is_404_html_report(tree):
    status, headers, body = get(tree.port, "/app/nothing.txt")
    assert status == 404 and headers["content-type"].startswith("text/html") and b"HTTP Status 404" in body


def test_welcome_files_mapped_to_servlets(tmp_path):
    from pycat.webapp.servlet import HttpServlet

    class Named(HttpServlet):
        def __init__(self, name):
            self.name = name

        def do_get(self, request, response):
            response.write("%s %s" % (self.name, request.servlet_path))
    files = {"py/index.py": "source", "exact/x": "", "plain/x": ""}
    t = Tree(tmp_path, contexts={"/app": {"files": files, "servlets": [
        ("ext", Named("ext"), ["*.py"]), ("home", Named("home"), ["/exact/home"])]}})
    try:
        t.contexts["/app"].welcome_files = ["index.html", "home", "index.py"]   # as a web.xml would
        assert get(t.port, "/app/py/")[2] == b"ext /py/index.py"          # existing file, *.py servlet
        assert get(t.port, "/app/exact/")[2] == b"home /exact/home"       # exact mapping, no file needed
        assert get(t.port, "/app/plain/")[0] == 404                       # nothing: no listing
    finally:
        t.stop()
