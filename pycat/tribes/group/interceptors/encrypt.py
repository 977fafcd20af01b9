"""EncryptInterceptor: symmetric encryption of message payloads with replay protection.

Wire format of the message field (as Tomcat 9.0.121+ and 10.1.60, whose jar the interop test
checks against): ``IV ‖ ciphertext`` where the plaintext is ``8-byte big-endian timestamp ‖
payload``. AES/GCM/NoPadding (12-byte IV, 128-bit tag, the default) authenticates;
AES/CBC|CFB|OFB/PKCS5Padding (16-byte IV) are accepted with a warning (malleable, so the replay
check is weak). Everything else is refused at start.

Replay protection on receipt: a message is rejected when its timestamp is older than now -
``replayWindowTime`` ms or newer than now + window, not newer than the last nonce evicted from the
window, or when its IV was already seen. Seen IVs are kept in timestamp order, at most
``replayWindowMessageCount``; evicting the oldest raises the "last evicted" floor.
Any failure (wrong key, tampering, replay) drops the message with a log line; nothing goes up.

``legacyFormat="true"`` (pycat's own attribute) speaks the format of Tomcat releases before the
replay protection (e.g. 10.1.55, 9.0.118): ``IV ‖ ciphertext(payload)`` with no timestamp and no
replay check; use it only to join such a cluster.
"""
import bisect
import logging
import os
import struct
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pycat.attrs import Attr
from pycat.errors import ChannelError
from pycat.tribes import channel as ch
from pycat.tribes.group.interceptor import ChannelInterceptor

log = logging.getLogger(__name__)
_TS = struct.Struct(">q")
try:  # cryptography >= 43 keeps the legacy feedback modes in "decrepit"
    from cryptography.hazmat.decrepit.ciphers.modes import CFB as _CFB, OFB as _OFB
except ImportError:  # pragma: no cover - older cryptography
    _CFB, _OFB = modes.CFB, modes.OFB
_MODES = {"CBC": modes.CBC, "CFB": _CFB, "OFB": _OFB}


def parse_key(text):
    text = (text or "").strip()
    if not text:
        raise ChannelError("EncryptInterceptor needs an encryptionKey")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ChannelError("encryptionKey must be hexadecimal") from None
    if len(key) not in (16, 24, 32):
        raise ChannelError("encryptionKey must be 128, 192 or 256 bits, not %d" % (len(key) * 8))
    return key


class EncryptInterceptor(ChannelInterceptor):
    encryption_algorithm = Attr(str, "AES/GCM/NoPadding", "algorithm/mode/padding")
    encryption_key = Attr(str, None, "hex key: 32, 48 or 64 hex digits")
    provider_name = Attr(str, None, "accepted for compatibility")
    replay_window_time = Attr(int, 10000, "ms a message may be old (or early) at most")
    replay_window_message_count = Attr(int, 8192, "nonces remembered at most")
    legacy_format = Attr(bool, False, "no timestamp prefix and no replay check (Tomcat before 2026)")

    def __init__(self):
        super().__init__()
        self._key = None
        self._mode = None
        self._seen = set()
        self._order = []  # sorted (timestamp, iv)
        self._floor = None
        self.dropped = 0

    def start_services(self, flags=ch.DEFAULT):
        self.configure()
        from pycat.tribes.group.interceptors.tcp_failure_detector import TcpFailureDetector
        if self.find_above(TcpFailureDetector) is not None:
            raise ChannelError("EncryptInterceptor must be placed before (above) TcpFailureDetector")
        super().start_services(flags)

    def configure(self):
        parts = (self.encryption_algorithm or "").split("/")
        if len(parts) != 3:
            raise ValueError("encryptionAlgorithm must be name/mode/padding, not %r" % self.encryption_algorithm)
        name, mode, pad = (p.upper() for p in parts)
        if name != "AES":
            raise ValueError("unsupported cipher %r (only AES)" % name)
        if mode == "GCM" and pad == "NOPADDING":
            self._mode = "GCM"
        elif mode in _MODES and pad in ("PKCS5PADDING", "PKCS7PADDING"):
            log.warning("EncryptInterceptor: %s is malleable; use AES/GCM/NoPadding", self.encryption_algorithm)
            self._mode = mode
        else:
            raise ValueError("unsupported encryption algorithm %r" % self.encryption_algorithm)
        self._key = parse_key(self.encryption_key)

    # -- crypto ---------------------------------------------------------------------------------
    def encrypt(self, timestamp, data):
        if self._key is None:
            self.configure()
        plain = data if self.legacy_format else _TS.pack(timestamp) + data
        if self._mode == "GCM":
            iv = os.urandom(12)
            return iv + AESGCM(self._key).encrypt(iv, plain, None)
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        plain = padder.update(plain) + padder.finalize()
        enc = Cipher(algorithms.AES(self._key), _MODES[self._mode](iv)).encryptor()
        return iv + enc.update(plain) + enc.finalize()

    def decrypt(self, data):
        """(timestamp, iv, payload); raises ValueError/InvalidTag on any failure."""
        if self._key is None:
            self.configure()
        if self._mode == "GCM":
            iv, body = data[:12], data[12:]
            if len(iv) < 12:
                raise ValueError("message shorter than its IV")
            plain = AESGCM(self._key).decrypt(iv, body, None)
        else:
            iv, body = data[:16], data[16:]
            if len(iv) < 16 or not body or len(body) % 16:
                raise ValueError("ciphertext length is not a whole number of blocks")
            dec = Cipher(algorithms.AES(self._key), _MODES[self._mode](iv)).decryptor()
            unpadder = padding.PKCS7(128).unpadder()
            plain = unpadder.update(dec.update(body) + dec.finalize()) + unpadder.finalize()
        if self.legacy_format:
            return None, bytes(iv), plain
        if len(plain) < 8:
            raise ValueError("decrypted message too short for its timestamp")
        return _TS.unpack_from(plain)[0], bytes(iv), plain[8:]

    # -- the chain ------------------------------------------------------------------------------
    def send_message(self, members, msg, payload):
        if msg.timestamp <= 0:
            msg.timestamp = int(time.time() * 1000)
        msg.message = self.encrypt(msg.timestamp, msg.message)
        super().send_message(members, msg, payload)

    def message_received(self, msg):
        try:
            timestamp, iv, data = self.decrypt(msg.message)
        except (ValueError, InvalidTag, TypeError) as exc:
            self.dropped += 1
            log.warning("dropping message %s from %s: decryption failed (%s)", msg.unique_id.hex(),
                        getattr(msg.address, "name", None), type(exc).__name__)
            return
        reason = None if timestamp is None else self.replay_check(timestamp, iv)
        if reason:
            self.dropped += 1
            log.warning("dropping message %s from %s: %s", msg.unique_id.hex(),
                        getattr(msg.address, "name", None), reason)
            return
        msg.message = data
        super().message_received(msg)

    def replay_check(self, timestamp, iv, now=None):
        """None when the message is fresh (and remember it), else why it is rejected."""
        now = int(time.time() * 1000) if now is None else now
        window = self.replay_window_time
        if timestamp < now - window:
            return "message too old (possible replay)"
        if timestamp > now + window:
            return "message timestamp in the future"
        if self._floor is not None and timestamp <= self._floor:
            return "message older than the replay window (possible replay)"
        if iv in self._seen:
            return "nonce already seen (replay)"
        self._seen.add(iv)
        bisect.insort(self._order, (timestamp, iv))
        while len(self._order) > max(1, self.replay_window_message_count):
            ts, old = self._order.pop(0)
            self._seen.discard(old)
            self._floor = ts if self._floor is None else max(self._floor, ts)
        return None
