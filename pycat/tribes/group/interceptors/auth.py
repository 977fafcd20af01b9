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

Membership records are authenticated too (``authenticateMembership``, on by default): anyone who
can send to the multicast group could otherwise announce members, and a made-up record whose
port is any listening socket passes TcpFailureDetector's probe. On start the interceptor hands
itself to the channel's membership service, which then signs each heartbeat it sends and ignores
every record that does not verify (logged once a minute per source host). A signed record carries
in its payload field ``payload ‖ b"PCM1" ‖ 8-byte wall-clock ms ‖ 32-byte tag``; the tag is an
HMAC-SHA256, under a key derived from ``secret``, of the whole record up to the tag (every field:
host, ports, command, domain, unique id, alive time, payload and that timestamp), so a record
cannot be changed or made up without the secret, and one replayed is ignored once its timestamp
is more than ``memberWindowTime`` ms away from the receiver's clock. Receivers strip the suffix:
listeners see the payload the member configured. Trade-offs:

* Tomcat peers (and pycat nodes without this interceptor) send unsigned records, so they are
  never members of a node that authenticates membership. They could not talk to it anyway (their
  messages carry no MAC); they still see this node, whose payload field they do not interpret.
* A node's clock must be within memberWindowTime of its peers' (set ``memberWindowTime="-1"`` to
  drop the time check, at the cost of replays being accepted for as long as they come).
* A rolling upgrade from nodes that do not sign yet needs ``authenticateMembership="false"``
  until every node runs this version.
"""
import hashlib
import hmac
import logging
import struct
import time

from pycat.attrs import Attr
from pycat.errors import ChannelError
from pycat.tribes import channel as ch
from pycat.tribes.group.interceptor import ChannelInterceptor

log = logging.getLogger(__name__)
MAGIC = b"PCA1"
TAG_SIZE = 32
_HEAD = struct.Struct(">Iq")
#: marks a signed member record's suffix: payload ‖ RECORD_MAGIC ‖ timestamp ‖ tag
RECORD_MAGIC = b"PCM1"
_TS = struct.Struct(">q")
_RECORD_SUFFIX = len(RECORD_MAGIC) + _TS.size + TAG_SIZE
# the record key is derived, so a record tag can never pass for a message tag or the other way
_RECORD_LABEL = b"pycat member record v1"


class AuthInterceptor(ChannelInterceptor):
    secret = Attr(str, None, "the shared cluster secret (required)")
    authenticate_membership = Attr(bool, True, "sign our member records and ignore unsigned or badly "
                                               "signed ones (Tomcat peers send unsigned records)")
    member_window_time = Attr(int, 60000, "ms a signed member record's timestamp may differ from our "
                                          "clock (<= 0: no time check)")

    def __init__(self):
        super().__init__()
        self.dropped = 0

    def start_services(self, flags=ch.DEFAULT):
        if not self.secret:
            raise ChannelError("AuthInterceptor needs a secret")
        if self.authenticate_membership:
            self._guard_membership()
        super().start_services(flags)

    def _guard_membership(self):
        """Make the channel's membership service sign and verify member records with us."""
        from pycat.tribes.group.coordinator import ChannelCoordinator
        coordinator = self.find_below(ChannelCoordinator)
        if coordinator is None:
            return
        coordinator.ensure_components()
        service = coordinator.membership
        if hasattr(service, "record_authenticator"):
            service.record_authenticator = self

    def _key(self):
        secret = self.secret
        return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)

    # -- member records -------------------------------------------------------------------------
    def _record_tag(self, record):
        key = hmac.new(self._key(), _RECORD_LABEL, hashlib.sha256).digest()
        return hmac.new(key, record, hashlib.sha256).digest()

    def sign_record(self, member, now=None):
        """The wire record of (local) member with its payload signed; the member is not changed
        (its own record, the sender field of every message, stays the same between heartbeats)."""
        now = int(time.time() * 1000) if now is None else now
        member.encode(refresh_alive=True)  # bring the alive time up to date, as an unsigned heartbeat does
        signed = member.copy()
        signed.payload = b"".join((member.payload, RECORD_MAGIC, _TS.pack(now)))
        tag = self._record_tag(signed.encode(refresh_alive=False))
        signed.payload += tag
        return signed.encode(refresh_alive=False)

    def verify_record(self, member, now=None):
        """(the payload the member configured, None) when member's record is signed under our
        secret and fresh; (None, why) otherwise."""
        payload = member.payload
        cut = len(payload) - _RECORD_SUFFIX
        if cut < 0 or payload[cut:cut + len(RECORD_MAGIC)] != RECORD_MAGIC:
            return None, "unsigned member record"
        unsigned = member.copy()
        unsigned.payload = payload[:-TAG_SIZE]
        if not hmac.compare_digest(self._record_tag(unsigned.encode(refresh_alive=False)), payload[-TAG_SIZE:]):
            return None, "member record with a wrong signature"
        window = self.member_window_time
        if window > 0:
            (stamp,) = _TS.unpack_from(payload, cut + len(RECORD_MAGIC))
            now = int(time.time() * 1000) if now is None else now
            if abs(now - stamp) > window:
                return None, "member record signed %d ms away from our clock (replayed, or clocks apart)" % (
                    now - stamp)
        return payload[:cut], None

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
