"""TLS for tests: a self-signed PEM certificate made on the spot, and a Connector serving it."""
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pycat.connector.ssl import Certificate, SSLHostConfig


def make_cert(tmp_path, host="localhost", prefix=""):
    """Write <prefix>cert.pem and <prefix>key.pem (EC P-256, CN and SAN = host, valid two days)
    into tmp_path; returns their paths."""
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


def add_tls(connector, cert_file, key_file, host_name=None):
    """SSLEnabled plus one <SSLHostConfig> (for host_name, else the default) with one <Certificate>."""
    config = SSLHostConfig()
    if host_name is not None:
        config.host_name = host_name
    cert = Certificate()
    cert.certificate_file, cert.certificate_key_file = cert_file, key_file
    config.add_certificate(cert)
    connector.add_ssl_host_config(config)
    connector.ssl_enabled = True
    return config
