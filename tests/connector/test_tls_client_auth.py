"""Client certificates over real TLS: certificateVerification / clientAuth with PEM CAs and CRLs,
and the TLS trust attributes pycat does not implement are refused loudly, never ignored."""
import datetime
import http.client
import logging
import shutil
import ssl
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pycat.connector.ssl import SSLHostConfig
from pycat.errors import ConfigError
from pycat.startup.digester import Digester
from pycat.webapp.servlet import HttpServlet

from pycat_harness import Tree, in_thread
from tls_helpers import add_tls, make_cert

pytestmark = pytest.mark.timeout(30)

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path, cert, key=None):
    data = cert.public_bytes(serialization.Encoding.PEM)
    path.write_bytes(data)
    if key is not None:
        key_path = path.with_suffix(".key")
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return str(path), str(key_path)
    return str(path)


class CA:
    def __init__(self, folder, cn):
        self.folder, self.cn = folder, cn
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(NOW - DAY).not_valid_after(NOW + 2 * DAY)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.pem = _write(folder / (cn + "-ca.pem"), self.cert)

    def client(self, cn):
        """(cert path, key path, serial) of a client certificate this CA signs."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(NOW - DAY).not_valid_after(NOW + 2 * DAY)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .sign(self.key, hashes.SHA256()))
        cert_path, key_path = _write(self.folder / (cn + ".pem"), cert, key)
        return cert_path, key_path, cert.serial_number

    def crl(self, *serials):
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(NOW - DAY).next_update(NOW + DAY))
        for serial in serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW - DAY).build())
        path = self.folder / (self.cn + "-crl.pem")
        path.write_bytes(builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        return str(path)


class Who(HttpServlet):
    def do_get(self, request, response):
        response.write("hello %s" % request.scheme)


@pytest.fixture
def pki(tmp_path):
    ca, other = CA(tmp_path, "good"), CA(tmp_path, "evil")
    server_cert, server_key = make_cert(tmp_path, prefix="server-")
    return {"ca": ca, "server": (server_cert, server_key), "alice": ca.client("alice"),
            "mallory": other.client("mallory"), "tmp": tmp_path}


def serve(pki, configure):
    tree = Tree(pki["tmp"] / "base", contexts={"": {"servlets": [("w", Who(), ["/who"])]}}, start=False)
    config = add_tls(tree.connector, *pki["server"])
    configure(tree.connector, config)
    tree.server.start()
    return tree


def fetch(tree, pki, client=None):
    """'ok <body>' or 'refused <error>' for one HTTPS request with an optional client certificate."""
    def run():
        ctx = ssl.create_default_context(cafile=pki["server"][0])
        if client is not None:
            ctx.load_cert_chain(client[0], client[1])
        conn = http.client.HTTPSConnection("localhost", tree.port, context=ctx, timeout=5)
        try:
            conn.request("GET", "/who")
            resp = conn.getresponse()
            return "ok %d %s" % (resp.status, resp.read().decode())
        except (OSError, http.client.HTTPException) as exc:
            # TLS 1.3: the server's verdict on the client certificate arrives after the client's
            # handshake, as an alert or a close on the first read
            return "refused %s" % type(exc).__name__
        finally:
            conn.close()
    return in_thread(run)


def test_required_accepts_only_certificates_of_the_configured_ca(pki):
    def configure(connector, config):
        config.certificate_verification = "required"
        config.ca_certificate_file = pki["ca"].pem
    tree = serve(pki, configure)
    try:
        assert fetch(tree, pki, pki["alice"][:2]) == "ok 200 hello https"     # positive control
        assert fetch(tree, pki).startswith("refused")                          # no certificate
        assert fetch(tree, pki, pki["mallory"][:2]).startswith("refused")       # another CA's
        assert fetch(tree, pki, pki["alice"][:2]) == "ok 200 hello https"      # the server is fine
    finally:
        tree.stop()


def test_optional_lets_clients_without_a_certificate_in(pki):
    def configure(connector, config):
        config.certificate_verification = "want"                              # Tomcat's synonym
        config.ca_certificate_file = pki["ca"].pem
    tree = serve(pki, configure)
    try:
        assert fetch(tree, pki) == "ok 200 hello https"
        assert fetch(tree, pki, pki["alice"][:2]) == "ok 200 hello https"
        assert fetch(tree, pki, pki["mallory"][:2]).startswith("refused")
    finally:
        tree.stop()


def test_revoked_client_certificate_is_refused(pki):
    bob = pki["ca"].client("bob")
    crl = pki["ca"].crl(bob[2])

    def configure(connector, config):
        config.certificate_verification = "required"
        config.ca_certificate_file = pki["ca"].pem
        config.certificate_revocation_list_file = crl
    tree = serve(pki, configure)
    try:
        assert fetch(tree, pki, bob[:2]).startswith("refused")
        assert fetch(tree, pki, pki["alice"][:2]) == "ok 200 hello https"
    finally:
        tree.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command names the hashed CA file")
def test_ca_certificate_path_a_hashed_folder(pki, tmp_path):
    folder = tmp_path / "cas"
    folder.mkdir()
    digest = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", pki["ca"].pem], capture_output=True,
                            text=True, check=True).stdout.strip()
    shutil.copy(pki["ca"].pem, folder / (digest + ".0"))

    def configure(connector, config):
        config.certificate_verification = "required"
        config.ca_certificate_path = str(folder)
    tree = serve(pki, configure)
    try:
        assert fetch(tree, pki, pki["alice"][:2]) == "ok 200 hello https"
        assert fetch(tree, pki, pki["mallory"][:2]).startswith("refused")
    finally:
        tree.stop()


def test_optional_no_ca_warns_and_verifies_like_optional(pki, caplog):
    config = SSLHostConfig()
    config.add_certificate(make_cert_config(pki))
    config.certificate_verification = "optional_no_ca"
    config.ca_certificate_file = pki["ca"].pem
    with caplog.at_level(logging.WARNING, logger="pycat.connector.ssl"):
        ctx = config.create_context()
    assert config.certificate_verification == "optionalNoCA" and ctx.verify_mode == ssl.CERT_OPTIONAL
    assert "optionalNoCA is not supported" in caplog.text


def test_tomcat_9_connector_attributes_client_auth_and_pem_truststore(pki):
    def configure(connector, config):
        # Tomcat 8.5/9 style: on the Connector, applied to its default SSLHostConfig
        assert connector.set_property("clientAuth", "true") is True
        assert connector.set_property("truststoreFile", pki["ca"].pem) is True
        assert config.certificate_verification == "required" and config.truststore_file == pki["ca"].pem
    tree = serve(pki, configure)
    try:
        assert fetch(tree, pki, pki["alice"][:2]) == "ok 200 hello https"
        assert fetch(tree, pki).startswith("refused")
    finally:
        tree.stop()


def test_none_asks_for_no_certificate_and_says_the_cas_are_unused(pki, caplog):
    def configure(connector, config):
        config.ca_certificate_file = pki["ca"].pem
    with caplog.at_level(logging.WARNING, logger="pycat.connector.ssl"):
        tree = serve(pki, configure)
    try:
        assert "caCertificateFile not used: certificateVerification is none" in caplog.text
        assert fetch(tree, pki) == "ok 200 hello https"
        assert fetch(tree, pki, pki["mallory"][:2]) == "ok 200 hello https"  # not even asked for
    finally:
        tree.stop()


# -- what pycat cannot do is an error or a warning ----------------------------------------------
def test_verification_without_cas_or_with_a_java_truststore_is_an_error(pki, tmp_path):
    config = SSLHostConfig()
    config.add_certificate(make_cert_config(pki))
    config.certificate_verification = "required"
    with pytest.raises(ConfigError, match="needs the CAs of the client certificates"):
        config.create_context()
    jks = tmp_path / "truststore.jks"
    jks.write_bytes(b"\xfe\xed\xfe\xed\x00\x00\x00\x02" + b"\x00" * 64)    # a JKS file's magic
    config.truststore_file = str(jks)
    with pytest.raises(ConfigError, match="truststore.jks is not a PEM file"):
        config.create_context()
    config.truststore_file = pki["ca"].pem                                    # positive control
    assert config.create_context().verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ValueError, match="certificateVerification must be"):
        config.certificate_verification = "sometimes"


def make_cert_config(pki):
    from pycat.connector.ssl import Certificate
    cert = Certificate()
    cert.certificate_file, cert.certificate_key_file = pki["server"]
    return cert


SERVER_XML = """<Server port="-1"><Service name="S">
  <Connector port="0" SSLEnabled="true" {connector}>
    <SSLHostConfig certificateVerification="{verification}" {host}>
      <Certificate certificateFile="{cert}" certificateKeyFile="{key}"/>
    </SSLHostConfig>
  </Connector>
  <Engine name="E" defaultHost="localhost"><Host name="localhost" appBase="webapps"/></Engine>
</Service></Server>"""


def test_unimplemented_trust_attributes_warn_with_the_reason_and_fail_under_strict(pki):
    cert, key = pki["server"]
    xml = SERVER_XML.format(connector='truststorePass="changeit" truststoreType="JKS"', verification="required",
                            host='caCertificateFile="%s" truststorePassword="changeit" '
                                 'certificateVerificationDepth="3"' % pki["ca"].pem, cert=cert, key=key)
    d = Digester()
    server = d.parse_string(xml, source="server.xml")
    text = "\n".join(d.warnings)
    for name in ("truststorePass", "truststoreType", "truststorePassword", "certificateVerificationDepth"):
        assert "failed to set property [%s]" % name in text, text
    assert "pycat reads PEM truststores only" in text and "cannot limit the chain depth" in text
    # the attributes pycat does implement were applied, and nothing else was warned about
    config = server.services[0].connectors[0].ssl_host_configs[0]
    assert config.certificate_verification == "required" and config.ca_certificate_file == pki["ca"].pem
    assert len(d.warnings) == 4, d.warnings
    with pytest.raises(ConfigError, match=r"truststorePass.*PEM truststores only"):
        Digester(strict=True).parse_string(xml, source="server.xml")
    # positive control: the same file without them is clean even under --strict
    clean = SERVER_XML.format(connector="", verification="required", host='caCertificateFile="%s"' % pki["ca"].pem,
                              cert=cert, key=key)
    strict = Digester(strict=True)
    strict.parse_string(clean, source="server.xml")
    assert strict.warnings == []


def test_a_bad_certificate_verification_value_names_the_file(pki):
    cert, key = pki["server"]
    xml = SERVER_XML.format(connector="", verification="sometimes", host="", cert=cert, key=key)
    with pytest.raises(ConfigError, match=r"server.xml:3 .*certificateVerification must be"):
        Digester().parse_string(xml, source="server.xml")
    with pytest.raises(ConfigError, match="certificateVerification must be"):
        Digester().parse_string(SERVER_XML.format(connector='clientAuth="maybe"', verification="none", host="",
                                                  cert=cert, key=key), source="server.xml")
