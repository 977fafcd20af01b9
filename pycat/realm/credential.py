"""CredentialHandlers: how a Realm compares a typed password with the stored credential.

Stored formats (Tomcat's, so a tomcat-users.xml written for Tomcat works unchanged):

* MessageDigestCredentialHandler without ``algorithm``: the password in clear text.
* MessageDigestCredentialHandler with ``algorithm`` (MD5, SHA-1, SHA-256, SHA-512...):
  ``hex(digest(password))`` or ``salt$iterations$hex`` where ``salt`` is hex, the first round
  digests salt + password and each further round digests the previous result
  (Tomcat's ConcurrentMessageDigest); ``{SHA}base64`` / ``{MD5}base64`` also match.
* SecretKeyCredentialHandler (PBKDF2, default PBKDF2WithHmacSHA512): ``salt$iterations$hex``,
  hex salt, the key length taken from the stored hash (keyLength only applies to ``mutate``).

Comparisons are constant-time (hmac.compare_digest). ``mutate(password)`` produces a stored
credential in the handler's format (what Tomcat's ``digest.sh`` prints).
"""
import base64
import hashlib
import hmac
import logging
import os

from pycat.attrs import Attr

log = logging.getLogger(__name__)

_JAVA_DIGESTS = {"MD5": "md5", "SHA": "sha1", "SHA-1": "sha1", "SHA1": "sha1", "SHA-224": "sha224",
                 "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512",
                 "SHA3-256": "sha3_256", "SHA3-512": "sha3_512"}
_PBKDF2 = {"PBKDF2WITHHMACSHA1": "sha1", "PBKDF2WITHHMACSHA224": "sha224", "PBKDF2WITHHMACSHA256": "sha256",
           "PBKDF2WITHHMACSHA384": "sha384", "PBKDF2WITHHMACSHA512": "sha512"}


def _equal(a, b, ignore_case=False):
    if a is None or b is None:
        return False
    if ignore_case:
        a, b = a.lower(), b.lower()
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _split_stored(stored):
    """'salt$iterations$hash' → (salt bytes, iterations, hash hex) or None."""
    first = stored.find("$")
    second = stored.find("$", first + 1)
    if first < 0 or second < 0:
        return None
    try:
        return bytes.fromhex(stored[:first]), int(stored[first + 1:second]), stored[second + 1:]
    except ValueError:
        return None


class CredentialHandlerBase:
    iterations = Attr(int, 1, "Rounds used by mutate()")
    salt_length = Attr(int, 0, "Salt bytes used by mutate()")
    encoding = Attr(str, "utf-8", "Password encoding")
    log_invalid_stored_credentials = Attr(bool, False, "Log stored credentials that cannot be read")

    def __init__(self):
        self.properties = {}

    def set_property(self, name, value):
        self.properties[name] = value
        return True

    def matches(self, input_credentials, stored_credentials):
        raise NotImplementedError

    def mutate(self, input_credentials):
        raise NotImplementedError

    def _salt(self):
        return os.urandom(self.salt_length) if self.salt_length > 0 else b""

    def _invalid(self, stored):
        if self.log_invalid_stored_credentials:
            log.warning("%s: stored credential in an unknown format", type(self).__name__)
        return False


class MessageDigestCredentialHandler(CredentialHandlerBase):
    algorithm = Attr(str, None, "Java digest name (MD5, SHA-256...); none: clear text")

    def _hash_name(self):
        name = _JAVA_DIGESTS.get(self.algorithm.upper(), self.algorithm.lower().replace("-", ""))
        if name not in hashlib.algorithms_available:
            raise ValueError("unknown digest algorithm %r" % self.algorithm)
        return name

    def digest(self, password, salt, iterations):
        h = hashlib.new(self._hash_name())
        h.update(salt or b"")
        h.update(password.encode(self.encoding))
        result = h.digest()
        for _ in range(max(iterations, 1) - 1):
            result = hashlib.new(self._hash_name(), result).digest()
        return result

    def matches(self, input_credentials, stored_credentials):
        if input_credentials is None or stored_credentials is None:
            return False
        if not self.algorithm:
            return _equal(input_credentials, stored_credentials)
        if stored_credentials.startswith("{MD5}") or stored_credentials.startswith("{SHA}"):
            name = "md5" if stored_credentials[1] == "M" else "sha1"
            got = base64.b64encode(hashlib.new(name, input_credentials.encode(self.encoding)).digest())
            return _equal(got.decode("ascii"), stored_credentials[5:])
        parts = _split_stored(stored_credentials)
        if parts is None:
            if "$" in stored_credentials:
                return self._invalid(stored_credentials)
            return _equal(self.digest(input_credentials, b"", 1).hex(), stored_credentials, True)
        salt, iterations, stored_hex = parts
        return _equal(self.digest(input_credentials, salt, iterations).hex(), stored_hex, True)

    def mutate(self, input_credentials):
        if not self.algorithm:
            return input_credentials
        salt = self._salt()
        if not salt and self.iterations == 1:
            return self.digest(input_credentials, b"", 1).hex()
        return "%s$%d$%s" % (salt.hex(), self.iterations, self.digest(input_credentials, salt, self.iterations).hex())


class SecretKeyCredentialHandler(CredentialHandlerBase):
    algorithm = Attr(str, "PBKDF2WithHmacSHA512", "PBKDF2WithHmacSHA1/256/512")
    iterations = Attr(int, 20000, "PBKDF2 rounds used by mutate()")
    salt_length = Attr(int, 32, "Salt bytes used by mutate()")
    key_length = Attr(int, 256, "Derived key bits used by mutate()")

    def _hash_name(self):
        name = _PBKDF2.get(self.algorithm.upper())
        if name is None:
            raise ValueError("unsupported SecretKeyFactory algorithm %r" % self.algorithm)
        return name

    def derive(self, password, salt, iterations, key_bits):
        return hashlib.pbkdf2_hmac(self._hash_name(), password.encode(self.encoding), salt, iterations,
                                   key_bits // 8)

    def matches(self, input_credentials, stored_credentials):
        if input_credentials is None or stored_credentials is None:
            return False
        parts = _split_stored(stored_credentials)
        if parts is None or parts[1] < 1 or len(parts[2]) % 2:
            return self._invalid(stored_credentials)
        salt, iterations, stored_hex = parts
        derived = self.derive(input_credentials, salt, iterations, len(stored_hex) * 4)
        return _equal(derived.hex(), stored_hex, True)

    def mutate(self, input_credentials):
        salt = self._salt()
        return "%s$%d$%s" % (salt.hex(), self.iterations,
                             self.derive(input_credentials, salt, self.iterations, self.key_length).hex())


class NestedCredentialHandler(CredentialHandlerBase):
    """Matches when any nested handler matches; ``mutate`` uses the first."""

    def __init__(self):
        super().__init__()
        self.handlers = []

    def add_credential_handler(self, handler):
        self.handlers.append(handler)

    def matches(self, input_credentials, stored_credentials):
        return any(h.matches(input_credentials, stored_credentials) for h in self.handlers)

    def mutate(self, input_credentials):
        return self.handlers[0].mutate(input_credentials) if self.handlers else None


def main(argv=None):
    """``python -m pycat.realm.credential [-a ALGORITHM] [-i ITERATIONS] password...``: print
    ``password:stored`` lines for tomcat-users.xml (Tomcat's digest.sh). PBKDF2 algorithms use the
    SecretKeyCredentialHandler, digest names (SHA-256...) the MessageDigestCredentialHandler."""
    import argparse
    import sys
    parser = argparse.ArgumentParser(prog="python -m pycat.realm.credential", description=main.__doc__)
    parser.add_argument("-a", "--algorithm", default="PBKDF2WithHmacSHA512")
    parser.add_argument("-i", "--iterations", type=int, default=None)
    parser.add_argument("-s", "--salt-length", type=int, default=None)
    parser.add_argument("passwords", nargs="+")
    args = parser.parse_args(argv)
    if args.algorithm.upper().startswith("PBKDF2"):
        handler = SecretKeyCredentialHandler()
    else:
        handler = MessageDigestCredentialHandler()
        handler.salt_length = 32
        handler.iterations = 1000
    handler.algorithm = args.algorithm
    if args.iterations is not None:
        handler.iterations = args.iterations
    if args.salt_length is not None:
        handler.salt_length = args.salt_length
    for password in args.passwords:
        sys.stdout.write("%s:%s\n" % (password, handler.mutate(password)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
