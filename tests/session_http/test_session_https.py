"""On https the session cookie is Secure (a TLS Connector with a self-signed certificate)."""
import datetime
import http.client
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from apps import session_app
from http_client import cookie_attrs
from pycat.connector.ssl import Certificate, SSLHostConfig
from pycat_harness import Tree, in_thread


def make_cert(tmp_path, host="localhost"):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


@pytest.mark.timeout(30)
def test_session_cookie_is_secure_on_https(tmp_path):
    cert_file, key_file = make_cert(tmp_path)
    tree = Tree(tmp_path, {"/app": {"files": session_app()}}, start=False)
    config = SSLHostConfig()
    cert = Certificate()
    cert.certificate_file, cert.certificate_key_file = cert_file, key_file
    config.add_certificate(cert)
    tree.connector.ssl_enabled = True
    tree.connector.add_ssl_host_config(config)
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
