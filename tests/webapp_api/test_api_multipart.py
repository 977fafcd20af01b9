"""multipart/form-data: the pure parser byte by byte, then uploads over real HTTP."""
import hashlib
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from api_app_src import app_files  # noqa: E402
from pycat.webapp import multipart  # noqa: E402
from pycat_harness import Tree, get  # noqa: E402

pytestmark = pytest.mark.timeout(30)

CTYPE = "multipart/form-data; boundary=----XyZ"
BODY = (b"preamble is ignored\r\n"
        b"------XyZ\r\n"
        b'Content-Disposition: form-data; name="title"\r\n'
        b"\r\n"
        b"caf\xc3\xa9\r\n"
        b"------XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="C:\\\\dir\\\\a \\"q\\".bin"\r\n'
        b"Content-Type: application/octet-stream\r\n"
        b"\r\n"
        b"\x00\r\n--not-the-boundary\r\n\xff\r\n"
        b"------XyZ--\r\n"
        b"epilogue")


def test_parse_fields_and_files():
    parts = multipart.parse(BODY, CTYPE)
    assert [p.name for p in parts] == ["title", "file"]
    assert parts[0].filename is None and parts[0].text() == "café"
    f = parts[1]
    assert f.filename == 'C:\\dir\\a "q".bin' and f.safe_filename == 'a "q".bin'
    assert f.content_type == "application/octet-stream"
    assert f.data == b"\x00\r\n--not-the-boundary\r\n\xff" and f.size == 24
    assert f.stream.read() == f.data


def test_header_params():
    assert multipart.parse_header_params('form-data; name="a;b"; filename=x.txt') == \
        ("form-data", {"name": "a;b", "filename": "x.txt"})
    assert multipart.boundary_of('multipart/form-data; boundary="q r"') == "q r"
    # IE's raw Windows paths: a backslash not before \ or " is kept
    assert multipart.parse_header_params(r'form-data; filename="C:\dir\f.txt"')[1] == {"filename": r"C:\dir\f.txt"}
    with pytest.raises(multipart.MultipartError):
        multipart.boundary_of("multipart/mixed; boundary=x")


@pytest.mark.parametrize("body", [
    b"------XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nunterminated",
    b"no boundary at all",
    b"------XyZ\r\nno blank line after headers",
    b"------XyZ junk",
])
def test_malformed(body):
    with pytest.raises(multipart.MultipartError):
        multipart.parse(body, CTYPE)


def test_part_limit():
    one = b'------XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n'
    body = one * 5 + b"------XyZ--\r\n"
    assert len(multipart.parse(body, CTYPE)) == 5
    with pytest.raises(multipart.MultipartError, match="more than 3"):
        multipart.parse(body, CTYPE, max_parts=3)


def _form(fields, files):
    boundary = "pycatTestBoundary7d"
    out = []
    for name, value in fields.items():
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                    % (boundary, name, value)).encode())
    for name, (filename, data) in files.items():
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                    "Content-Type: image/png\r\n\r\n" % (boundary, name, filename)).encode() + data + b"\r\n")
    out.append(("--%s--\r\n" % boundary).encode())
    return b"".join(out), "multipart/form-data; boundary=" + boundary


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path / "base", contexts={"/api": {"files": app_files(str(tmp_path / "log"))}},
             connector_attrs={"max_post_size": 200000})
    yield t
    t.stop()


def test_upload_over_http(tree):
    data = os.urandom(100000)
    body, ctype = _form({"title": "holiday"}, {"photo": ("pic.png", data)})
    status, _, payload = get(tree.port, "/api/upload?x=1", method="POST", body=body,
                             headers={"Content-Type": ctype})
    assert status == 200
    out = json.loads(payload)
    assert out["title"] == "holiday" and out["failed"] is None
    assert out["files"] == [{"name": "photo", "filename": "pic.png", "size": 100000, "type": "image/png",
                             "sha": hashlib.sha256(data).hexdigest()}]


def test_upload_over_max_post_size_gives_no_parts(tree):
    body, ctype = _form({"title": "big"}, {"photo": ("big.png", b"x" * 250000)})
    status, _, payload = get(tree.port, "/api/upload", method="POST", body=body,
                             headers={"Content-Type": ctype})
    assert status == 200
    out = json.loads(payload)
    assert out == {"title": None, "failed": "maxPostSize", "files": []}
