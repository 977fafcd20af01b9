"""TLS configuration: <SSLHostConfig> and <Certificate> → an ssl.SSLContext.

Only PEM files are supported (certificateFile, certificateKeyFile, certificateChainFile,
caCertificateFile); a Java keystore (certificateKeystoreFile) is reported as a clear error.
``protocols`` accepts Tomcat's forms ("TLSv1.2+TLSv1.3", "all", "-TLSv1.1") for the minimum
and maximum version; ``ciphers`` is passed to OpenSSL as is.
"""
import logging
import os
import ssl

from pycat.attrs import Attr
from pycat.errors import ConfigError

log = logging.getLogger(__name__)

_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


class Certificate:
    certificate_file = Attr(str, None, "PEM certificate")
    certificate_key_file = Attr(str, None, "PEM private key (default: in certificateFile)")
    certificate_key_password = Attr(str, None, "Password of the private key")
    certificate_chain_file = Attr(str, None, "PEM chain appended to the certificate")
    certificate_keystore_file = Attr(str, None, "Java keystore (not supported: use PEM)")
    certificate_keystore_password = Attr(str, None, "Kept")
    certificate_keystore_type = Attr(str, None, "Kept")
    certificate_key_alias = Attr(str, None, "Kept")
    type = Attr(str, "UNDEFINED", "RSA, EC, DSA or UNDEFINED")


class SSLHostConfig:
    host_name = Attr(str, "_default_", "SNI host name")
    protocols = Attr(str, "all", "Enabled TLS versions, Tomcat syntax")
    ciphers = Attr(str, None, "OpenSSL cipher string")
    certificate_verification = Attr(str, "none", "none, optional, required")
    certificate_verification_depth = Attr(int, 10, "Kept")
    ca_certificate_file = Attr(str, None, "PEM CAs for client certificates")
    truststore_file = Attr(str, None, "Java truststore (not supported: use caCertificateFile)")
    honor_cipher_order = Attr(bool, False, "Prefer the server's cipher order")
    ssl_protocol = Attr(str, "TLS", "Kept", xml="sslProtocol")
    disable_session_tickets = Attr(bool, False, "Disable TLS session tickets")

    def __init__(self):
        self.certificates = []

    def add_certificate(self, cert):
        self.certificates.append(cert)

    def _versions(self):
        text = (self.protocols or "all").replace(",", "+")
        enabled = set()
        for token in [t.strip() for t in text.split("+") if t.strip()]:
            neg = token.startswith("-")
            name = token.lstrip("+-")
            names = {"TLSv1.2", "TLSv1.3"} if name.lower() == "all" else {name}
            unknown = names - set(_VERSIONS) - {"SSLv2Hello", "SSLv3"}
            if unknown:
                raise ConfigError("SSLHostConfig protocols: unknown protocol %s" % ", ".join(unknown))
            names &= set(_VERSIONS)
            enabled = enabled - names if neg else enabled | names
        return enabled

    def create_context(self, base=None):
        """base: folder relative file names are resolved against (CATALINA_BASE, as Tomcat)."""
        def where(path):
            if path and base and not os.path.isabs(os.path.expanduser(path)):
                return os.path.join(base, path)
            return os.path.expanduser(path) if path else path
        if not self.certificates:
            raise ConfigError("SSLHostConfig %s has no <Certificate>" % self.host_name)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        versions = sorted(self._versions(), key=lambda n: _VERSIONS[n])
        if versions:
            ctx.minimum_version = _VERSIONS[versions[0]]
            ctx.maximum_version = _VERSIONS[versions[-1]]
        if self.ciphers:
            ctx.set_ciphers(self.ciphers)
        if self.honor_cipher_order:
            ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        if self.disable_session_tickets:
            ctx.options |= ssl.OP_NO_TICKET
        for cert in self.certificates:
            if cert.certificate_keystore_file and not cert.certificate_file:
                raise ConfigError("Certificate: Java keystores are not supported (%s); use "
                                  "certificateFile/certificateKeyFile PEM files" % cert.certificate_keystore_file)
            try:
                ctx.load_cert_chain(where(cert.certificate_file), where(cert.certificate_key_file),
                                    cert.certificate_key_password)
                if cert.certificate_chain_file:
                    # the chain is appended by OpenSSL when it is in the cert file; load it as extra CAs
                    ctx.load_verify_locations(where(cert.certificate_chain_file))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError("Certificate %s / %s cannot be loaded: %s"
                                  % (cert.certificate_file, cert.certificate_key_file, exc)) from None
        mode = (self.certificate_verification or "none").lower()
        if mode in ("optional", "optional_no_ca", "optionalnoca"):
            ctx.verify_mode = ssl.CERT_OPTIONAL
        elif mode in ("required", "require"):
            ctx.verify_mode = ssl.CERT_REQUIRED
        if self.ca_certificate_file:
            ctx.load_verify_locations(where(self.ca_certificate_file))
        return ctx
