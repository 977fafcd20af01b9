"""Path traversal attempts never read outside docBase (and mostly get 400 like Tomcat)."""
import os

import pytest

from pycat_harness import Tree, parse_response, raw_exchange

pytestmark = pytest.mark.timeout(60)

ATTACKS = [
    "/../secret.txt", "/app/../secret.txt", "/app/../../secret.txt", "/app/%2e%2e/secret.txt",
    "/app/%2E%2E/%2e%2e/secret.txt", "/app/.%2e/secret.txt", "/app/%2e%2e%2fsecret.txt",
    "/app/..%2Fsecret.txt", "/app/..%2fsecret.txt", "/app/..%5Csecret.txt", "/app/..%5csecret.txt",
    "/app/..\\secret.txt", "/app/%00/../secret.txt", "/app/secret.txt%00.html", "//secret.txt",
    "/app//../secret.txt", "/app/%252e%252e/secret.txt", "/app/%c0%ae%c0%ae/secret.txt",
    "http://localhost/../secret.txt", "/app/link/secret.txt", "/app/link", "/app/ok/../../secret.txt",
    "/app/..;/secret.txt", "/app/;/../../secret.txt", "/app/%2e%2e;x=y/secret.txt",
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("trav")
    (base / "secret.txt").write_text("TOPSECRET")
    (base / "webapps").mkdir()
    t = Tree(base, contexts={"/app": {"files": {"ok/file.txt": "fine"}}})
    os.symlink(str(base), str(base / "webapps" / "app" / "link"))
    yield t
    t.stop()


@pytest.mark.parametrize("path", ATTACKS + ["ABSOLUTE"])
def test_traversal_never_escapes(tree, path):
    if path == "ABSOLUTE":      # the secret's absolute file name, under the context
        path = "/app/" + os.path.join(tree.base, "secret.txt")
    data = ("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path).encode("latin-1")
    status, _, body, _ = parse_response(raw_exchange(tree.port, data))
    assert b"TOPSECRET" not in body
    assert status in (400, 404, 302), status


@pytest.mark.parametrize("path", ["/app/%2e%2e/%2e%2e/secret.txt", "/app/..%2Fsecret.txt", "/app/..%5Csecret.txt",
                                  "/app/..\\secret.txt", "/../secret.txt", "/app/%00x"])
def test_encoded_and_climbing_paths_are_400(tree, path):
    data = ("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path).encode("latin-1")
    assert parse_response(raw_exchange(tree.port, data))[0] == 400


def test_normal_file_still_served(tree):
    data = b"GET /app/ok/file.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    assert parse_response(raw_exchange(tree.port, data))[2] == b"fine"
