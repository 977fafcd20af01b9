"""FragmentationInterceptor: split large messages, reassemble them (Tomcat's namesake).

Every message gets a trailing flag byte. Unfragmented: ``payload ‖ 0x00``. A message longer
than ``maxSize`` (and ``okToProcess``) is sent as k fragments sharing its unique id:
``chunk_i ‖ int i ‖ int k ‖ 0x01`` (big-endian, i from 0). The receiver collects fragments by
(sender, unique id) and delivers the joined payload once all k arrived; a collection still
incomplete after ``expire`` ms is dropped on the next heartbeat.
"""
import logging
import struct
import time

from pycat.attrs import Attr
from pycat.tribes.group.interceptor import ChannelInterceptor

log = logging.getLogger(__name__)
_TRAILER = struct.Struct(">ii?")
#: fragments a collection may announce (bounds memory against a hostile total)
MAX_FRAGMENTS = 1 << 16


class FragmentationInterceptor(ChannelInterceptor):
    max_size = Attr(int, 102400, "largest unfragmented payload, bytes")
    expire = Attr(int, 60000, "ms an incomplete fragment collection is kept")

    def __init__(self):
        super().__init__()
        self._collections = {}  # (sender, unique id) -> [created, total, {nr: bytes}]

    def send_message(self, members, msg, payload):
        data = msg.message
        size = len(data)
        if size <= self.max_size or not self.ok_to_process(msg.options):
            msg.message = data + b"\x00"
            return super().send_message(members, msg, payload)
        step = max(1, self.max_size)
        count = (size + step - 1) // step
        view = memoryview(data)
        for i in range(count):
            frag = msg.clone() if i < count - 1 else msg
            frag.message = b"".join((view[i * step:(i + 1) * step], _TRAILER.pack(i, count, True)))
            super().send_message(members, frag, payload)

    def message_received(self, msg):
        data = msg.message
        if not data:
            log.warning("dropping message without a fragmentation flag from %s", msg.address)
            return
        if data[-1] == 0:
            msg.message = data[:-1]
            return super().message_received(msg)
        if len(data) < _TRAILER.size:
            log.warning("dropping truncated fragment from %s", msg.address)
            return
        nr, total, _ = _TRAILER.unpack_from(data, len(data) - _TRAILER.size)
        if not (0 < total <= MAX_FRAGMENTS and 0 <= nr < total):
            log.warning("dropping fragment %d/%d from %s", nr, total, msg.address)
            return
        key = (msg.address, msg.unique_id)
        coll = self._collections.get(key)
        if coll is None:
            coll = self._collections[key] = [time.monotonic(), total, {}]
        if coll[1] != total:
            log.warning("dropping fragment with inconsistent total from %s", msg.address)
            return
        coll[2][nr] = data[:-_TRAILER.size]
        if len(coll[2]) == total:
            del self._collections[key]
            parts = coll[2]
            msg.message = b"".join(parts[i] for i in range(total))
            super().message_received(msg)

    def heartbeat(self):
        super().heartbeat()
        self.expire_collections()

    def expire_collections(self):
        now = time.monotonic()
        for key, coll in list(self._collections.items()):
            if (now - coll[0]) * 1000 > self.expire:
                log.info("dropping incomplete message %s from %s (%d of %d fragments)",
                         key[1].hex(), key[0].name, len(coll[2]), coll[1])
                del self._collections[key]
