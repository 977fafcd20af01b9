"""OrderInterceptor: per-sender in-order delivery (Tomcat's namesake).

Each message is sent to each destination separately with a 4-byte big-endian sequence number
appended (counters per destination start at 1). The receiver keeps, per sender, the next number it
expects: a message with that number (or an older one) is delivered, later ones wait in a sorted
buffer until the gap fills. A buffer entry older than ``expire`` ms, or a buffer longer than
``maxQueue``, is flushed (delivered when ``forwardExpired``) and the counter jumps past it.
When a member disappears its buffered messages are flushed and its counters reset.
"""
import logging
import struct
import time

from pycat.attrs import Attr
from pycat.errors import ChannelError
from pycat.tribes.group.interceptor import ChannelInterceptor

log = logging.getLogger(__name__)
_INT = struct.Struct(">i")


class _Incoming:
    __slots__ = ("expected", "pending")

    def __init__(self):
        self.expected = 1
        self.pending = {}  # nr -> (msg, arrival)


class OrderInterceptor(ChannelInterceptor):
    expire = Attr(int, 3000, "ms a message may wait for its predecessors")
    forward_expired = Attr(bool, True, "deliver expired messages instead of dropping them")
    max_queue = Attr(int, 2 ** 31 - 1, "buffered messages per sender at most")

    def __init__(self):
        super().__init__()
        self._out = {}
        self._in = {}

    def send_message(self, members, msg, payload):
        if not self.ok_to_process(msg.options):
            return super().send_message(members, msg, payload)
        faulty = {}
        for member in members:
            nr = self._out.get(member, 0) + 1
            self._out[member] = nr
            copy = msg.clone()
            copy.message = msg.message + _INT.pack(nr)
            try:
                super().send_message([member], copy, payload)
            except ChannelError as exc:
                faulty.update(exc.faulty or {member: exc})
        if faulty:
            raise ChannelError("ordered send failed for %d member(s)" % len(faulty), faulty)

    def message_received(self, msg):
        if not self.ok_to_process(msg.options):
            return super().message_received(msg)
        if len(msg.message) < 4:
            log.warning("dropping message without an order number from %s", msg.address)
            return
        (nr,) = _INT.unpack_from(msg.message, len(msg.message) - 4)
        msg.message = msg.message[:-4]
        state = self._in.setdefault(msg.address, _Incoming())
        ready = []
        if nr <= state.expected:
            if nr == state.expected:
                state.expected += 1
            ready.append(msg)
            while state.expected in state.pending:
                ready.append(state.pending.pop(state.expected)[0])
                state.expected += 1
        else:
            state.pending[nr] = (msg, time.monotonic())
            ready.extend(self._expire(state))
        for m in ready:
            super().message_received(m)

    def _expire(self, state, force=False):
        """Flush a buffer whose oldest entry expired (or that grew too long); returns what to deliver."""
        if not state.pending:
            return []
        now = time.monotonic()
        oldest = min(arrival for _, arrival in state.pending.values())
        if not (force or len(state.pending) > self.max_queue
                or (self.expire >= 0 and (now - oldest) * 1000 > self.expire)):
            return []
        out = []
        for nr in sorted(state.pending):
            msg = state.pending[nr][0]
            if self.forward_expired:
                out.append(msg)
            state.expected = max(state.expected, nr + 1)
        state.pending.clear()
        return out

    def heartbeat(self):
        super().heartbeat()
        for state in list(self._in.values()):
            for m in self._expire(state):
                super().message_received(m)

    def member_disappeared(self, member):
        state = self._in.pop(member, None)
        self._out.pop(member, None)
        if state is not None:
            for m in self._expire(state, force=True):
                super().message_received(m)
        super().member_disappeared(member)
