"""ClusterMessage: what a cluster sends to its members (Tomcat's ClusterMessage), and its envelope.

A cluster message rides the channel as one value of pycat's versioned codec
(pycat/tribes/io/codec.py), never pickle. The value is a dict whose keys come in this order:

    {"__pycat_cluster__": 1,       envelope version (an int; anything else is rejected)
     "kind": str,                  which family of message this is ("session", "farm", ...): the
                                   cluster listeners route on it
     "unique_id": str,             the sender's identifier of the message ("" when unused)
     "timestamp": int,             ms since the epoch when the message was made
     "body": value}                the family's own payload: any codec value

So the bytes on the wire are the codec's dict (tag 0x0A, u32 count 5, then key/value items).
The dict's first key tells a cluster envelope from other values on the same channel (RPC and
replicated-map messages have their own), so the cluster takes only its own messages. The sender
member is not in the envelope: the receiver sets ``address`` from the ChannelData that carried it
(as Tomcat's transient ClusterMessage.address).
"""
import time

TAG = "__pycat_cluster__"
VERSION = 1


class ClusterMessage:
    __slots__ = ("kind", "body", "unique_id", "timestamp", "address")

    def __init__(self, kind, body=None, unique_id="", timestamp=None):
        self.kind = kind
        self.body = body
        self.unique_id = unique_id
        self.timestamp = int(time.time() * 1000) if timestamp is None else int(timestamp)
        #: the sending Member: set by the cluster on send (local member) and on receipt (sender)
        self.address = None

    def to_wire(self):
        if not isinstance(self.kind, str) or not isinstance(self.unique_id, str):
            raise TypeError("ClusterMessage kind and unique_id must be str")
        return {TAG: VERSION, "kind": self.kind, "unique_id": self.unique_id,
                "timestamp": self.timestamp, "body": self.body}

    @staticmethod
    def is_envelope(value):
        return type(value) is dict and TAG in value

    @classmethod
    def from_wire(cls, value):
        """The message a decoded envelope holds; ValueError if the envelope is malformed."""
        if not cls.is_envelope(value):
            raise ValueError("not a cluster message envelope")
        if value[TAG] != VERSION:
            raise ValueError("unsupported cluster message version %r" % (value[TAG],))
        if set(value) != {TAG, "kind", "unique_id", "timestamp", "body"}:
            raise ValueError("cluster message envelope has keys %s" % sorted(map(str, value)))
        kind, unique_id, timestamp = value["kind"], value["unique_id"], value["timestamp"]
        if type(kind) is not str or type(unique_id) is not str or type(timestamp) is not int:
            raise ValueError("cluster message envelope has fields of the wrong type")
        return cls(kind, value["body"], unique_id, timestamp)

    def __repr__(self):
        return "ClusterMessage(kind=%r, unique_id=%r, from=%s)" % (
            self.kind, self.unique_id, getattr(self.address, "name", self.address))
