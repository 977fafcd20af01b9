"""On https the session cookie is Secure (a TLS Connector with a self-signed certificate)."""
import http.client
import ssl

import pytest

from apps import session_app
from http_client import cookie_attrs
from pycat_harness import Tree, in_thread
from tls_helpers import add_tls, make_cert


@pytest.mark.timeout(30)
def test_session_cookie_is_secure_on_https(tmp_path):
    cert_file, key_file = make_cert(tmp_path)
    tree = Tree(tmp_path, {"/app": {"files": session_app()}}, start=False)
    add_tls(tree.connector, cert_file, key_file)
    tree.server.start()
    try:
        def client():
            conn = http.client.HTTPSConnection("localhost", tree.port, timeout=5,
                                               context=ssl.create_default_context(cafile=cert_file))
            conn.request("GET", "/app/session?op=inc")
            resp = conn.getresponse()
            out = resp.status, resp.getheader("Set-Cookie"), resp.read()
            conn.close()
            return out
        status, header, body = in_thread(client)
    finally:
        tree.stop()
    assert status == 200 and b"count=1" in body
    name, _, attrs = cookie_attrs(header)
    assert name == "JSESSIONID" and attrs.get("secure") is True and attrs.get("httponly") is True
