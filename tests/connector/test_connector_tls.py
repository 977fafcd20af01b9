"""TLS: SSLEnabled + SSLHostConfig/Certificate with a self-signed PEM made in the test."""
import datetime
import http.client
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pycat.connector.ssl import Certificate, SSLHostConfig
from pycat.errors import ConfigError
from pycat.webapp.servlet import HttpServlet

from pycat_harness import Tree, in_thread

pytestmark = pytest.mark.timeout(30)


def make_cert(tmp_path, host="localhost", prefix=""):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / (prefix + "cert.pem"), tmp_path / (prefix + "key.pem")
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


class WhoAmI(HttpServlet):
    def do_get(self, request, response):
        response.write("%s secure=%s" % (request.scheme, request.secure))


def test_https_serves_with_a_pem_certificate(tmp_path):
    cert_file, key_file = make_cert(tmp_path)
    tree = Tree(tmp_path, contexts={"": {"servlets": [("w", WhoAmI(), ["/who"])]}}, start=False)
    config = SSLHostConfig()
    cert = Certificate()
    cert.certificate_file, cert.certificate_key_file = cert_file, key_file
    config.add_certificate(cert)
    tree.connector.ssl_enabled = True
    tree.connector.add_ssl_host_config(config)
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
    config = SSLHostConfig()
    cert = Certificate()
    cert.certificate_file, cert.certificate_key_file = "cert.pem", "key.pem"
    config.add_certificate(cert)
    tree.connector.ssl_enabled = True
    tree.connector.add_ssl_host_config(config)
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
        config = SSLHostConfig()
        config.host_name = host_name
        cert = Certificate()
        cert.certificate_file, cert.certificate_key_file = cert_file, key_file
        config.add_certificate(cert)
        tree.connector.add_ssl_host_config(config)
    tree.connector.ssl_enabled = True
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
