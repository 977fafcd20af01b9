"""The straight writers of the replication hot paths give the bytes of the generic encoding.

DeltaRequest.to_encoded and SessionMessage.encoded write what codec.dumps of their plain forms
would, without the codec's walk; the receivers decode them with the same checks as ever."""
import datetime

import pytest

from pycat.ha.cluster_message import ClusterMessage
from pycat.ha.session import delta as d
from pycat.ha.session.delta_manager import KIND, session_message
from pycat.tribes.io import codec


def deltas():
    plain = d.DeltaRequest("/app", "S1.node1", (3, "tcp://10.0.0.1:4000"))
    plain.create(1800, 1700000000.5)
    plain.set_attribute("count", 7)
    plain.set_attribute("name", "ann")
    plain.set_attribute("big", 2 ** 70)
    plain.set_attribute("none", None)
    plain.set_attribute("float", 1.5)
    plain.set_attribute("flag", True)
    plain.set_attribute("raw", b"\x00\x01")
    plain.set_attribute("cart", [1, {"sku": "a", "qty": 2}])
    plain.set_attribute("when", datetime.date(2026, 1, 2))
    plain.set_attribute("pair", (1, 2))
    plain.remove_attribute("gone")
    plain.set_max_inactive(60)
    plain.set_principal(("bob", ("b", "a")))
    plain.set_auth_type("FORM")
    plain.access(1700000001.25)
    plain.change_id("S2.node1")
    many = d.DeltaRequest("/app", "S3", (1, "w"), record_all_actions=True)
    for i in range(100):                      # more actions than the list heads made in advance
        many.set_attribute("k%d" % i, "v" * i)
    ended = d.DeltaRequest("/app", "S4", (2, "w"))
    ended.invalidate()
    return [plain, many, ended, d.DeltaRequest("/app", "S5")]


@pytest.mark.parametrize("index", range(4))
def test_to_encoded_is_the_encoding_of_to_plain(index):
    delta = deltas()[index]
    assert bytes(delta.to_encoded()) == codec.dumps(delta.to_plain())[1:]
    # with a lazy encoder (the manager's): scalars as they are, the rest through the encoder
    made = []

    def encoder():
        made.append(1)
        return lambda name, value: d.SKIP if name == "pair" else d.attr_values.encode(value)
    expected = codec.dumps(delta.to_plain(encoder=encoder))[1:]
    assert bytes(delta.to_encoded(encoder=encoder)) == expected
    # and it decodes to the same DeltaRequest as ever
    back = d.DeltaRequest.from_plain(codec.loads(codec.dumps(delta.to_encoded())))
    assert back.actions == d.DeltaRequest.from_plain(delta.to_plain()).actions


def test_an_encoder_is_made_only_for_a_value_that_needs_one():
    only_scalars = d.DeltaRequest("/app", "S1")
    only_scalars.set_attribute("n", 1)
    only_scalars.set_attribute("s", "x")
    calls = []
    only_scalars.to_encoded(encoder=lambda: calls.append(1) or (lambda name, value: value))
    assert calls == []
    only_scalars.set_attribute("l", [1])           # positive control: a list needs the encoder
    only_scalars.to_encoded(encoder=lambda: calls.append(1) or (lambda name, value: value))
    assert calls == [1]


@pytest.mark.parametrize("payload", [None, "text", [b"rec1", b"rec2"], {"sessions": 3, "skipped": 0}, "delta"])
def test_session_message_encoded_is_the_encoding_of_its_plain_form(payload):
    if payload == "delta":
        payload = deltas()[0].to_encoded()
    message = session_message("/app", d.EVT_SESSION_DELTA, "S1.node1", payload, "tok")
    wire = codec.dumps(message.to_wire())
    plain_payload = codec.loads(b"\x01" + payload) if isinstance(payload, codec.Encoded) else payload
    sm = d.SessionMessage("/app", d.EVT_SESSION_DELTA, "S1.node1", plain_payload, "tok", message.timestamp)
    generic = ClusterMessage(KIND, sm.to_plain(), "", message.timestamp)
    assert wire == codec.dumps(generic.to_wire())
    back = d.SessionMessage.from_plain(ClusterMessage.from_wire(codec.loads(wire)).body)
    assert (back.app, back.event_type, back.session_id, back.unique_id, back.payload) == (
        "/app", d.EVT_SESSION_DELTA, "S1.node1", "tok", plain_payload)


def test_session_message_refuses_an_unknown_event():
    with pytest.raises(ValueError):
        session_message("/app", 999, "S1")
