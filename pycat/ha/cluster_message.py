"""ClusterMessage: what a cluster sends to its members (Tomcat's ClusterMessage), and its envelope.

A cluster message rides the channel as one value of pycat's versioned codec
(pycat/tribes/io/codec.py), never pickle. The value is a flat list, by position:

    ["__pycat_cluster__",          marker: tells a cluster envelope from other values on the channel
     2,                            envelope version (an int; anything else is rejected)
     kind: str,                    which family of message this is ("session", "farm", ...): the
                                   cluster listeners route on it
     unique_id: str,               the sender's identifier of the message ("" when unused)
     timestamp: int,               ms since the epoch when the message was made (>= 0)
     body: value]                  the family's own payload: any codec value

So the bytes on the wire are the codec's list (tag 0x08, u32 count 6, then the items): six codec
items around the body (version 1 was a dict of five keys: ten). The marker tells a cluster envelope
from other values on the same channel (RPC and replicated-map messages have their own), so the
cluster takes only its own messages; a version-1 dict envelope (an older pycat) is recognised and
refused with a clear reason. The sender member is not in the envelope: the receiver sets
``address`` from the ChannelData that carried it (as Tomcat's transient ClusterMessage.address).
"""
import time

TAG = "__pycat_cluster__"
VERSION = 2
FIELDS = 6


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
        return [TAG, VERSION, self.kind, self.unique_id, self.timestamp, self.body]

    @staticmethod
    def is_envelope(value):
        kind = type(value)
        if kind is list:
            return bool(value) and value[0] == TAG
        return kind is dict and TAG in value          # version 1: refused by from_wire, with the reason

    @classmethod
    def from_wire(cls, value):
        """The message a decoded envelope holds; ValueError if the envelope is malformed."""
        if type(value) is dict and TAG in value:
            raise ValueError("unsupported cluster message version %r (a dict envelope: an older pycat)"
                             % (value[TAG],))
        if type(value) is not list or not value or value[0] != TAG:
            raise ValueError("not a cluster message envelope")
        if len(value) < 2 or type(value[1]) is not int or value[1] != VERSION:
            raise ValueError("unsupported cluster message version %r" % (value[1] if len(value) > 1 else None,))
        if len(value) != FIELDS:
            raise ValueError("cluster message envelope has %d fields, not %d" % (len(value), FIELDS))
        _tag, _version, kind, unique_id, timestamp, body = value
        if type(kind) is not str or type(unique_id) is not str or type(timestamp) is not int or timestamp < 0:
            raise ValueError("cluster message envelope has fields of the wrong type")
        return cls(kind, body, unique_id, timestamp)

    def __repr__(self):
        return "ClusterMessage(kind=%r, unique_id=%r, from=%s)" % (
            self.kind, self.unique_id, getattr(self.address, "name", self.address))
