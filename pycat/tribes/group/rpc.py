"""RpcChannel: request/response over a channel (Tomcat's RpcChannel, RpcMessage, NoRpcChannelReply).

A request goes to the destinations; each one's callback ``reply_request(message, sender)``
produces the answer, sent back through the channel. The caller waits until the reply mode is
satisfied (FIRST: one answer; MAJORITY: at least half; ALL: every destination; NO_REPLY: return at
once) or the timeout ends, and gets ``[Response(source, message)]``. A node where no listener took
the request answers with NoRpcChannelReply, which lowers the expected count instead of counting
as an answer. Replies arriving after the caller gave up go to ``callback.left_over``.

On the wire an RPC message is a dict in our versioned codec (never Java serialization, never
pickle): ``{"__pycat_rpc__": 1, "kind": "rpc"|"norpc", "reply": bool, "uuid": bytes,
"rpc_id": bytes, "message": value}``. Requests and replies never carry SYNCHRONIZED_ACK, so two
nodes calling each other cannot deadlock on acks.
"""
import logging
import uuid as uuidlib

import gevent.event

from pycat.tribes import channel as ch

log = logging.getLogger(__name__)

FIRST_REPLY = 1
MAJORITY_REPLY = 2
ALL_REPLY = 3
NO_REPLY = 4

_TAG = "__pycat_rpc__"
_VERSION = 1


class RpcMessage:
    __slots__ = ("rpc_id", "uuid", "message", "reply")

    def __init__(self, rpc_id, uuid, message, reply=False):
        self.rpc_id, self.uuid, self.message, self.reply = bytes(rpc_id), bytes(uuid), message, reply

    def __repr__(self):
        return "%s(rpc_id=%r, reply=%s)" % (type(self).__name__, self.rpc_id, self.reply)


class NoRpcChannelReply(RpcMessage):
    """Sent back when no listener on the receiving node accepted the request."""

    __slots__ = ()

    def __init__(self, rpc_id, uuid):
        super().__init__(rpc_id, uuid, None, True)


class Response:
    __slots__ = ("source", "message")

    def __init__(self, source, message):
        self.source, self.message = source, message

    def __repr__(self):
        return "Response(%s, %r)" % (getattr(self.source, "name", self.source), self.message)


def to_wire(obj):
    if isinstance(obj, RpcMessage):
        return {_TAG: _VERSION, "kind": "norpc" if isinstance(obj, NoRpcChannelReply) else "rpc",
                "reply": obj.reply, "uuid": obj.uuid, "rpc_id": obj.rpc_id, "message": obj.message}
    return obj


def from_wire(obj):
    if isinstance(obj, dict) and _TAG in obj:
        if obj[_TAG] != _VERSION:
            raise ValueError("unsupported RPC message version %r" % obj[_TAG])
        if obj.get("kind") == "norpc":
            return NoRpcChannelReply(obj["rpc_id"], obj["uuid"])
        return RpcMessage(obj["rpc_id"], obj["uuid"], obj.get("message"), bool(obj.get("reply")))
    return obj


class _Collector:
    def __init__(self, destinations, mode):
        self.expected = destinations
        self.mode = mode
        self.responses = []
        self.done = gevent.event.Event()

    def add(self, response):
        self.responses.append(response)
        self.check()

    def no_reply(self):
        self.expected -= 1
        self.check()

    def check(self):
        got = len(self.responses)
        if self.expected <= 0 or (
                self.mode == ALL_REPLY and got >= self.expected) or (
                self.mode == MAJORITY_REPLY and got * 2 >= self.expected) or (
                self.mode == FIRST_REPLY and got > 0):
            self.done.set()


class RpcChannel:
    """A channel listener that correlates requests and replies for one rpc_id."""

    FIRST_REPLY, MAJORITY_REPLY, ALL_REPLY, NO_REPLY = FIRST_REPLY, MAJORITY_REPLY, ALL_REPLY, NO_REPLY

    def __init__(self, rpc_id, channel, callback, reply_options=ch.USE_ACK):
        self.rpc_id = bytes(rpc_id)
        self.channel = channel
        self.callback = callback
        self.reply_options = reply_options
        self._pending = {}
        channel.add_channel_listener(self)

    def send(self, destinations, message, rpc_options=ALL_REPLY, channel_options=ch.USE_ACK, timeout=15000):
        """Send a request; returns [Response]. ``timeout`` in ms. Raises ChannelError on send failure."""
        destinations = list(destinations)
        if not destinations:
            return []
        key = uuidlib.uuid4().bytes
        request = RpcMessage(self.rpc_id, key, message, False)
        options = ch.parse_send_options(channel_options) & ~ch.SYNCHRONIZED_ACK
        if rpc_options == NO_REPLY:
            self.channel.send(destinations, request, options)
            return []
        collector = _Collector(len(destinations), rpc_options)
        self._pending[key] = collector
        try:
            self.channel.send(destinations, request, options)
            collector.done.wait(timeout / 1000.0 if timeout and timeout > 0 else None)
        finally:
            self._pending.pop(key, None)
        return list(collector.responses)

    def breakdown(self):
        self.channel.remove_channel_listener(self)

    # -- ChannelListener -----------------------------------------------------------------------
    def accept(self, msg, sender):
        return isinstance(msg, RpcMessage) and msg.rpc_id == self.rpc_id

    def message_received(self, msg, sender):
        if msg.reply:
            collector = self._pending.get(msg.uuid)
            if collector is None:
                if not isinstance(msg, NoRpcChannelReply):
                    left = getattr(self.callback, "left_over", None)
                    if left is not None:
                        left(msg.message, sender)
                return
            if isinstance(msg, NoRpcChannelReply):
                collector.no_reply()
            else:
                collector.add(Response(sender, msg.message))
            return
        answer = self.callback.reply_request(msg.message, sender)
        reply = RpcMessage(self.rpc_id, msg.uuid, answer, True)
        self.channel.send([sender], reply, self.reply_options & ~ch.SYNCHRONIZED_ACK)
