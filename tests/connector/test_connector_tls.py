"""TLS: SSLEnabled + SSLHostConfig/Certificate with a self-signed PEM made in the test."""
import http.client
import ssl

import pytest

from pycat.connector.ssl import Certificate, SSLHostConfig
from pycat.errors import ConfigError
from pycat.webapp.servlet import HttpServlet

from pycat_harness import Tree, in_thread
from tls_helpers import add_tls, make_cert

pytestmark = pytest.mark.timeout(30)


class WhoAmI(HttpServlet):
    def do_get(self, request, response):
        response.write("%s secure=%s" % (request.scheme, request.secure))


def test_https_serves_with_a_pem_certificate(tmp_path):
    cert_file, key_file = make_cert(tmp_path)
    tree = Tree(tmp_path, contexts={"": {"servlets": [("w", WhoAmI(), ["/who"])]}}, start=False)
    add_tls(tree.connector, cert_file, key_file)
    tree.server.start()
    try:
        def client():
            ctx = ssl.create_default_context(cafile=cert_file)
            conn = http.client.HTTPSConnection("localhost", tree.port, context=ctx, timeout=5)
            out = []
            for _ in range(2):                      # keep-alive over TLS
                conn.request("GET", "/who")
                out.append(conn.getresponse().read())
            conn.close()
            return out
        assert in_thread(client) == [b"https secure=True"] * 2
    finally:
        tree.stop()


def test_plain_http_to_a_tls_port_does_not_break_the_server(tmp_path):
    cert_file, key_file = make_cert(tmp_path)
    tree = Tree(tmp_path, contexts={"": {"servlets": [("w", WhoAmI(), ["/who"])]}}, start=False)
    tree.connector.ssl_enabled = True
    tree.connector.set_property("SSLCertificateFile", cert_file)        # Tomcat 8.5-style attributes
    tree.connector.set_property("SSLCertificateKeyFile", key_file)
    tree.server.start()
    try:
        import gevent.socket
        s = gevent.socket.create_connection(("127.0.0.1", tree.port), timeout=5)
        s.sendall(b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            s.recv(1024)          # a TLS alert, a close or a reset: any is fine
        except OSError:
            pass
        s.close()

        def client():
            ctx = ssl.create_default_context(cafile=cert_file)
            conn = http.client.HTTPSConnection("localhost", tree.port, context=ctx, timeout=5)
            conn.request("GET", "/who")
            return conn.getresponse().read()
        assert in_thread(client) == b"https secure=True"
    finally:
        tree.stop()


def test_missing_certificate_is_a_config_error(tmp_path):
    config = SSLHostConfig()
    cert = Certificate()
    cert.certificate_file = str(tmp_path / "nope.pem")
    config.add_certificate(cert)
    with pytest.raises(ConfigError, match="cannot be loaded"):
        config.create_context()
    with pytest.raises(ConfigError, match="no <Certificate>"):
        SSLHostConfig().create_context()


def test_protocols_syntax():
    config = SSLHostConfig()
    config.protocols = "TLSv1.2+TLSv1.3"
    assert config._versions() == {"TLSv1.2", "TLSv1.3"}
    config.protocols = "all,-TLSv1.2"
    assert config._versions() == {"TLSv1.3"}
    config.protocols = "TLSv9"
    with pytest.raises(ConfigError):
        config._versions()


def test_relative_certificate_paths_resolve_against_catalina_base(tmp_path):
    make_cert(tmp_path)
    tree = Tree(tmp_path, contexts={"": {"servlets": [("w", WhoAmI(), ["/who"])]}}, start=False)
    add_tls(tree.connector, "cert.pem", "key.pem")
    tree.server.start()
    try:
        def client():
            ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
            conn = http.client.HTTPSConnection("localhost", tree.port, context=ctx, timeout=5)
            conn.request("GET", "/who")
            return conn.getresponse().read()
        assert in_thread(client) == b"https secure=True"
    finally:
        tree.stop()


def test_sni_selects_the_host_config(tmp_path):
    default_cert, default_key = make_cert(tmp_path)
    other_cert, other_key = make_cert(tmp_path, "other.test", "other-")
    tree = Tree(tmp_path, contexts={"": {"servlets": [("w", WhoAmI(), ["/who"])]}}, start=False)
    for host_name, cert_file, key_file in (("_default_", default_cert, default_key),
                                           ("other.test", other_cert, other_key)):
        add_tls(tree.connector, cert_file, key_file, host_name)
    tree.server.start()
    try:
        import socket

        def peer_cn(server_name, cafile):
            ctx = ssl.create_default_context(cafile=cafile)
            with socket.create_connection(("127.0.0.1", tree.port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
                    return dict(x[0] for x in tls.getpeercert()["subject"])["commonName"]
        assert in_thread(peer_cn, "other.test", other_cert) == "other.test"
        assert in_thread(peer_cn, "localhost", default_cert) == "localhost"
    finally:
        tree.stop()
