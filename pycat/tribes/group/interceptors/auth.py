"""AuthInterceptor: every message carries an HMAC-SHA256 under the cluster secret (pycat's own).

Security model: Tribes itself authenticates nobody, so anyone who can reach the receiver port
can inject messages (and, above the channel, session data). With this interceptor every node
of the cluster shares ``secret``; a message whose MAC is wrong or missing is dropped and logged
before any interceptor above it, or any listener, looks at its bytes. Place it LOWEST in the
stack (last <Interceptor>), so it signs what finally goes on the wire and checks what arrives
before anything else decodes it; it works anywhere, but only guards what is above it.

The MAC covers the whole message as the peer will see it at this level:
``options (4) ‖ timestamp (8) ‖ unique id (16) ‖ sender member's unique id (16) ‖ payload``, so
flipping an option bit, replaying the payload under another id or another sender fails. Wire
format of the message field: ``payload ‖ b"PCA1" ‖ 32-byte tag``. Replays of an entire message
(same id) are not detected here; use EncryptInterceptor's replay window for that.
"""
import hashlib
import hmac
import logging
import struct

from pycat.attrs import Attr
from pycat.errors import ChannelError
from pycat.tribes import channel as ch
from pycat.tribes.group.interceptor import ChannelInterceptor

log = logging.getLogger(__name__)
MAGIC = b"PCA1"
TAG_SIZE = 32
_HEAD = struct.Struct(">Iq")


class AuthInterceptor(ChannelInterceptor):
    secret = Attr(str, None, "the shared cluster secret (required)")

    def __init__(self):
        super().__init__()
        self.dropped = 0

    def start(self, flags=ch.DEFAULT):
        if not self.secret:
            raise ChannelError("AuthInterceptor needs a secret")
        super().start(flags)

    def _key(self):
        secret = self.secret
        return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)

    def _tag(self, msg, payload):
        sender = msg.address.unique_id if msg.address is not None else b"\x00" * 16
        mac = hmac.new(self._key(), _HEAD.pack(msg.options & 0xFFFFFFFF, msg.timestamp), hashlib.sha256)
        mac.update(msg.unique_id)
        mac.update(sender)
        mac.update(payload)
        return mac.digest()

    def send_message(self, members, msg, payload):
        msg.message = b"".join((msg.message, MAGIC, self._tag(msg, msg.message)))
        super().send_message(members, msg, payload)

    def message_received(self, msg):
        data = msg.message
        cut = len(data) - TAG_SIZE - len(MAGIC)
        if cut < 0 or data[cut:cut + len(MAGIC)] != MAGIC:
            return self._drop(msg, "no MAC")
        body = data[:cut]
        if not hmac.compare_digest(self._tag(msg, body), data[cut + len(MAGIC):]):
            return self._drop(msg, "wrong MAC")
        msg.message = body
        super().message_received(msg)

    def _drop(self, msg, why):
        self.dropped += 1
        from pycat.tribes.group.interceptors.tcp_failure_detector import TCP_FAIL_DETECT
        from pycat.tribes.group.interceptors.tcp_ping import TCP_PING_DATA
        if msg.message in (TCP_FAIL_DETECT, TCP_PING_DATA):
            # liveness probes are written straight to the socket and carry no MAC; they carry nothing
            log.debug("dropping unauthenticated liveness probe from %s", getattr(msg.address, "name", None))
            return
        log.warning("dropping message %s from %s: %s (check the cluster secret)",
                    msg.unique_id.hex(), getattr(msg.address, "name", None), why)
