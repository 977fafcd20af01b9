"""TLS configuration: <SSLHostConfig> and <Certificate> → an ssl.SSLContext.

Only PEM files are supported (certificateFile, certificateKeyFile, certificateChainFile,
caCertificateFile); a Java keystore (certificateKeystoreFile) is reported as a clear error.
``protocols`` accepts Tomcat's forms ("TLSv1.2+TLSv1.3", "all", "-TLSv1.1") for the minimum
and maximum version; ``ciphers`` is passed to OpenSSL as is.

Client certificates: ``certificateVerification`` takes Tomcat's values (none/false/no,
optional/want, required/require/true/yes, optionalNoCA) and sets the context's verify_mode; the
CAs that sign acceptable client certificates come from ``caCertificateFile`` (PEM),
``caCertificatePath`` (an OpenSSL hashed folder) or a PEM ``truststoreFile``; and
``certificateRevocationListFile`` (PEM CRLs) refuses revoked client certificates. Verification
without any CA is a ConfigError (no client could ever pass); a truststore that is not PEM (JKS,
PKCS12) is a ConfigError when verification is on, and a warning when it is off (unused).
optionalNoCA cannot be done with Python's ssl (it cannot ask for a certificate without
verifying it): it warns and verifies like optional.

Trust attributes pycat does not implement (truststorePassword, truststoreType,
truststoreProvider, truststoreAlgorithm, certificateVerificationDepth, revocationEnabled,
certificateRevocationListPath, trustManagerClassName...) are refused by ``set_property``, so the
digester warns with the reason from ``attribute_hint`` (an error under ``--strict``); they are
never silently ignored. The same goes for the Tomcat 8.5/9 TLS attributes of <Connector>
(``CONNECTOR_ATTRIBUTES``: clientAuth, truststoreFile, keystoreFile, SSLVerifyClient...): the
ones pycat implements are applied to the Connector's default SSLHostConfig, as Tomcat does, the
others are refused with a reason.
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


def certificate_verification(value):
    """Tomcat's CertificateVerification.fromString → "none", "optional", "optionalNoCA" or
    "required"; ValueError for anything else (a typo must not mean "none")."""
    key = str(value).strip().lower()
    for canonical, names in _VERIFICATION.items():
        if key in names:
            return canonical
    raise ValueError("certificateVerification must be none, optional, optionalNoCA or required "
                     "(or Tomcat's true/yes/want/false/no), not %r" % (value,))


_VERIFICATION = {
    "required": ("required", "require", "true", "yes"),
    "optional": ("optional", "want"),
    "optionalNoCA": ("optionalnoca", "optional_no_ca"),
    "none": ("none", "false", "no"),
}

#: SSLHostConfig attributes of Tomcat that pycat does not implement → why, and what to use
UNSUPPORTED = {
    "truststorePassword": "pycat reads PEM truststores only, which have no password (use caCertificateFile)",
    "truststoreType": "pycat reads PEM truststores only (convert a JKS/PKCS12 truststore: "
                      "keytool -exportcert -rfc, or openssl pkcs12 -nokeys; then caCertificateFile)",
    "truststoreProvider": "pycat reads PEM truststores only (use caCertificateFile)",
    "truststoreAlgorithm": "pycat uses OpenSSL's verification (use caCertificateFile)",
    "trustManagerClassName": "pycat uses OpenSSL's verification; no custom trust manager",
    "certificateVerificationDepth": "Python's ssl module cannot limit the chain depth "
                                    "(OpenSSL's default, 100, applies)",
    "revocationEnabled": "no OCSP or CRL distribution points: give certificateRevocationListFile (PEM CRLs)",
    "certificateRevocationListPath": "use certificateRevocationListFile (one PEM file of CRLs)",
    "keyManagerAlgorithm": "pycat uses OpenSSL's key manager",
    "insecureRenegotiation": "not configurable with Python's ssl module",
    "sessionCacheSize": "not configurable with Python's ssl module",
    "sessionTimeout": "not configurable with Python's ssl module",
}


def attribute_hint(name):
    """Why a TLS attribute (of SSLHostConfig or Connector) is refused, or None."""
    return UNSUPPORTED.get(name) or CONNECTOR_UNSUPPORTED.get(name)


def _looks_like_pem(path):
    try:
        with open(path, "rb") as fh:
            return b"-----BEGIN " in fh.read(64 * 1024)
    except OSError:
        return None


class SSLHostConfig:
    host_name = Attr(str, "_default_", "SNI host name")
    protocols = Attr(str, "all", "Enabled TLS versions, Tomcat syntax")
    ciphers = Attr(str, None, "OpenSSL cipher string")
    certificate_verification = Attr(certificate_verification, "none",
                                    "Client certificates: none, optional or required (Tomcat's synonyms "
                                    "too); optionalNoCA verifies like optional, with a warning")
    ca_certificate_file = Attr(str, None, "PEM CAs that sign accepted client certificates")
    ca_certificate_path = Attr(str, None, "Folder of PEM CAs named by their OpenSSL hash (c_rehash)")
    truststore_file = Attr(str, None, "PEM CAs for client certificates (as caCertificateFile); a JKS or "
                                      "PKCS12 truststore is an error when verification is on")
    certificate_revocation_list_file = Attr(str, None, "PEM CRLs: revoked client certificates are refused")
    honor_cipher_order = Attr(bool, False, "Prefer the server's cipher order")
    ssl_protocol = Attr(str, "TLS", "Kept", xml="sslProtocol")
    disable_session_tickets = Attr(bool, False, "Disable TLS session tickets")

    def __init__(self):
        self.certificates = []

    def add_certificate(self, cert):
        self.certificates.append(cert)

    def set_property(self, name, value):
        """Tomcat attributes pycat does not implement are refused (never silently dropped): the
        digester warns with ``attribute_hint`` (an error under --strict)."""
        return False

    @staticmethod
    def attribute_hint(name):
        return UNSUPPORTED.get(name)

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
        self._client_verification(ctx, where)
        return ctx

    def _client_verification(self, ctx, where):
        """verify_mode, the CAs and CRLs for client certificates (see the module doc)."""
        name = "SSLHostConfig %s" % self.host_name
        mode = certificate_verification(self.certificate_verification or "none")
        truststore = where(self.truststore_file)
        pem_truststore = _looks_like_pem(truststore) if truststore else None
        if mode == "none":
            unused = [attr for attr, value in (("caCertificateFile", self.ca_certificate_file),
                                               ("caCertificatePath", self.ca_certificate_path),
                                               ("truststoreFile", self.truststore_file),
                                               ("certificateRevocationListFile",
                                                self.certificate_revocation_list_file)) if value]
            if unused:
                log.warning("%s: %s not used: certificateVerification is none (client certificates are "
                            "not asked for)", name, ", ".join(unused))
            return
        if mode == "optionalNoCA":
            log.warning("%s: certificateVerification=optionalNoCA is not supported by Python's ssl "
                        "module; client certificates are verified as with optional", name)
        if truststore and not pem_truststore:
            raise ConfigError("%s: truststoreFile %s is %s; pycat reads PEM CA certificates only "
                              "(convert a JKS or PKCS12 truststore with keytool -exportcert -rfc or "
                              "openssl pkcs12 -nokeys, then use caCertificateFile)"
                              % (name, truststore, "missing or unreadable" if pem_truststore is None
                                 else "not a PEM file"))
        cafiles = [f for f in (where(self.ca_certificate_file), truststore) if f]
        capath = where(self.ca_certificate_path)
        if not cafiles and not capath:
            raise ConfigError("%s: certificateVerification=%s needs the CAs of the client certificates: "
                              "set caCertificateFile (PEM)" % (name, self.certificate_verification))
        try:
            for cafile in cafiles:
                ctx.load_verify_locations(cafile=cafile)
            if capath:
                if not os.path.isdir(capath):
                    raise ConfigError("%s: caCertificatePath %s is not a folder" % (name, capath))
                ctx.load_verify_locations(capath=capath)
            if self.certificate_revocation_list_file:
                # a PEM CRL file loads into the same store; the flag makes OpenSSL consult it
                ctx.load_verify_locations(cafile=where(self.certificate_revocation_list_file))
                ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("%s: client certificate CAs or CRLs cannot be loaded: %s" % (name, exc)) from None
        ctx.verify_mode = ssl.CERT_REQUIRED if mode == "required" else ssl.CERT_OPTIONAL


# -- Tomcat 8.5/9 TLS attributes on <Connector> ------------------------------------------------
#: the ones pycat implements → (on the default SSLHostConfig, or on its first Certificate, attribute)
CONNECTOR_ATTRIBUTES = {
    "clientAuth": ("host", "certificate_verification"),
    "SSLVerifyClient": ("host", "certificate_verification"),
    "truststoreFile": ("host", "truststore_file"),
    "SSLCACertificateFile": ("host", "ca_certificate_file"),
    "SSLCACertificatePath": ("host", "ca_certificate_path"),
    "crlFile": ("host", "certificate_revocation_list_file"),
    "SSLCARevocationFile": ("host", "certificate_revocation_list_file"),
    "ciphers": ("host", "ciphers"),
    "SSLCipherSuite": ("host", "ciphers"),
    "sslEnabledProtocols": ("host", "protocols"),
    "SSLProtocol": ("host", "protocols"),
    "sslProtocol": ("host", "ssl_protocol"),
    "useServerCipherSuitesOrder": ("host", "honor_cipher_order"),
    "SSLHonorCipherOrder": ("host", "honor_cipher_order"),
    "SSLDisableSessionTickets": ("host", "disable_session_tickets"),
    "SSLCertificateFile": ("cert", "certificate_file"),
    "SSLCertificateKeyFile": ("cert", "certificate_key_file"),
    "SSLCertificateChainFile": ("cert", "certificate_chain_file"),
    "SSLPassword": ("cert", "certificate_key_password"),
    "keystoreFile": ("cert", "certificate_keystore_file"),      # → "Java keystores are not supported"
    "keystorePass": ("cert", "certificate_keystore_password"),
    "keystoreType": ("cert", "certificate_keystore_type"),
    "keyAlias": ("cert", "certificate_key_alias"),
}
#: the ones it does not → why
CONNECTOR_UNSUPPORTED = {
    "truststorePass": UNSUPPORTED["truststorePassword"],
    "truststoreType": UNSUPPORTED["truststoreType"],
    "truststoreProvider": UNSUPPORTED["truststoreProvider"],
    "truststoreAlgorithm": UNSUPPORTED["truststoreAlgorithm"],
    "trustManagerClassName": UNSUPPORTED["trustManagerClassName"],
    "trustMaxCertLength": UNSUPPORTED["certificateVerificationDepth"],
    "SSLVerifyDepth": UNSUPPORTED["certificateVerificationDepth"],
    "SSLCARevocationPath": UNSUPPORTED["certificateRevocationListPath"],
    "keyPass": "the key of a Java keystore: pycat reads PEM keys (SSLPassword / certificateKeyPassword)",
    "keystoreProvider": "Java keystores are not supported: use PEM files",
    "algorithm": UNSUPPORTED["keyManagerAlgorithm"],
    "sessionCacheSize": UNSUPPORTED["sessionCacheSize"],
    "sessionTimeout": UNSUPPORTED["sessionTimeout"],
    "SSLInsecureRenegotiation": UNSUPPORTED["insecureRenegotiation"],
}


def default_host_config(configs):
    """The SSLHostConfig Tomcat's legacy Connector attributes apply to (made when there is none)."""
    if not configs:
        configs.append(SSLHostConfig())
    return configs[0]


def set_connector_attribute(connector, name, value):
    """A Tomcat 8.5/9 TLS attribute of <Connector>: True when applied (to the default
    SSLHostConfig or its Certificate), False when pycat does not implement it (the digester warns,
    see attribute_hint), None when ``name`` is not a TLS attribute."""
    target = CONNECTOR_ATTRIBUTES.get(name)
    if target is None:
        if name in CONNECTOR_UNSUPPORTED:
            return False
        return None
    kind, attr = target
    host = default_host_config(connector.ssl_host_configs)
    if kind == "host":
        setattr(host, attr, value)
    else:
        if not host.certificates:
            host.add_certificate(Certificate())
        setattr(host.certificates[0], attr, value)
    return True
