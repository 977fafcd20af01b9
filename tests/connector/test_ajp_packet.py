"""The AJP/1.3 packet format, pure (pycat/connector/ajp_packet.py): no sockets."""
import random
import re
import struct

import pytest

from pycat.connector import ajp_packet as ajp

SECRET = "s3cret"


def sample_stream():
    """A web server's side of a connection: CPING, a POST with attributes and two body packets, a GET."""
    fwd = ajp.forward_request(
        "POST", "/app/echo", remote_addr="10.0.0.7", remote_host="client.example", server_name="www.example",
        server_port=443, is_ssl=True,
        headers=[("Host", "www.example"), ("Content-Type", "text/plain"), ("content-length", "10"),
                 ("X-Custom", "v\u00e9")],
        attributes=[("query_string", "a=1&b=2"), ("route", "node1"), ("ssl_cipher", "TLS_AES_128_GCM_SHA256"),
                    ("ssl_key_size", 128), ("remote_user", "alice"), ("secret", SECRET)],
        request_attributes=[("AJP_REMOTE_PORT", "50123"), ("AJP_LOCAL_ADDR", "10.0.0.1")])
    return (ajp.CPING_PACKET + fwd + ajp.body_packet(b"hello") + ajp.body_packet(b"world")
            + ajp.forward_request("PROPFIND", "/x", attributes=[("secret", SECRET)]))


def decode_all(stream, cuts):
    decoder = ajp.PacketDecoder()
    out = []
    last = 0
    for cut in list(cuts) + [len(stream)]:
        out += decoder.feed(stream[last:cut])
        last = cut
    assert decoder.pending == 0
    return out


def check_payloads(payloads):
    assert len(payloads) == 5
    assert payloads[0] == bytes([ajp.CPING])
    req = ajp.parse_forward_request(payloads[1])
    assert (req.method, req.uri, req.protocol) == ("POST", "/app/echo", "HTTP/1.1")
    assert (req.remote_addr, req.remote_host, req.server_name, req.server_port, req.is_ssl) == \
        ("10.0.0.7", "client.example", "www.example", 443, True)
    assert req.headers == [("host", "www.example"), ("content-type", "text/plain"), ("content-length", "10"),
                           ("X-Custom", "v\u00e9")]          # coded headers come back lower-case
    assert req.content_length == 10
    assert req.attributes == {"query_string": "a=1&b=2", "route": "node1", "ssl_cipher": "TLS_AES_128_GCM_SHA256",
                              "ssl_key_size": 128, "remote_user": "alice", "secret": SECRET}
    assert req.request_attributes == [("AJP_REMOTE_PORT", "50123"), ("AJP_LOCAL_ADDR", "10.0.0.1")]
    assert ajp.parse_body_chunk(payloads[2]) == b"hello" and ajp.parse_body_chunk(payloads[3]) == b"world"
    other = ajp.parse_forward_request(payloads[4])
    assert other.method == "PROPFIND" and other.content_length == -1


def test_stream_cut_at_every_single_place_decodes_the_same():
    stream = sample_stream()
    check_payloads(decode_all(stream, []))
    for cut in range(1, len(stream)):
        check_payloads(decode_all(stream, [cut]))


def test_stream_fed_byte_by_byte_and_in_random_pieces():
    stream = sample_stream()
    check_payloads(decode_all(stream, range(1, len(stream))))
    rng = random.Random(1938)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 12)))
        check_payloads(decode_all(stream, cuts))


def test_stored_method_and_unknown_header_names():
    req = ajp.parse_forward_request(ajp.forward_request("PATCH", "/", headers=[("X-Long-Name", "1")])[4:])
    assert req.method == "PATCH" and req.header("x-long-name") == "1"


def test_null_strings_and_empty_body_packet():
    req = ajp.parse_forward_request(ajp.forward_request("GET", "/", remote_host=None)[4:])
    assert req.remote_host is None
    assert ajp.parse_body_chunk(b"") == b"" and ajp.parse_body_chunk(b"\x00\x00") == b""


# -- what the decoder refuses --------------------------------------------------------------------------
def test_wrong_magic_is_refused_at_once():
    decoder = ajp.PacketDecoder()
    with pytest.raises(ajp.AjpError, match="magic"):
        decoder.feed(b"GET / HTTP/1.1\r\n")
    with pytest.raises(ajp.AjpError, match="magic"):
        ajp.PacketDecoder().feed(b"AB\x00\x01\x09")        # the container's own direction
    assert ajp.PacketDecoder().feed(b"\x12\x34\x00\x01\x0a") == [b"\x0a"]   # positive control


def test_absurd_lengths_are_refused_before_anything_is_buffered():
    decoder = ajp.PacketDecoder(8192)
    with pytest.raises(ajp.AjpError, match="packetSize"):
        decoder.feed(b"\x12\x34\xff\xff")
    assert decoder.pending == 0
    assert len(ajp.PacketDecoder(8192).feed(b"\x12\x34\x1f\xfc" + b"\x00" * 8188)) == 1   # exactly the limit
    with pytest.raises(ajp.AjpError):
        ajp.PacketDecoder(8192).feed(b"\x12\x34\x1f\xfd")
    assert len(ajp.PacketDecoder(65536).feed(b"\x12\x34\x1f\xfd" + b"\x00" * 8189)) == 1


def test_the_buffer_never_holds_more_than_one_packet_and_one_feed():
    decoder = ajp.PacketDecoder(8192)
    for _ in range(100):
        decoder.feed(b"\x12\x34\x1f\xfc" + b"\x00" * 8000)      # incomplete: waits for its rest
        assert decoder.pending <= 8192
        decoder.feed(b"\x00" * 188)
        assert decoder.pending == 0


def test_truncated_forward_requests_are_malformed_never_crash():
    payload = ajp.forward_request("POST", "/x", headers=[("host", "h"), ("X-A", "b")],
                                  attributes=[("secret", SECRET), ("ssl_key_size", 256)],
                                  request_attributes=[("AJP_REMOTE_PORT", "1")])[4:]
    assert ajp.parse_forward_request(payload).method == "POST"          # positive control
    for end in range(len(payload)):
        with pytest.raises(ajp.AjpError):
            ajp.parse_forward_request(payload[:end])
    with pytest.raises(ajp.AjpError, match="after the end"):
        ajp.parse_forward_request(payload + b"\x00")


@pytest.mark.parametrize("payload, why", [
    (b"\x02\x00", "method code"),
    (b"\x02\x1c", "method code"),
    (b"\x02\x02" + b"\x00\x08HTTP/1.1", "past the end"),
    (b"\x02\x02" + b"\x00\x08HTTP/1.1X", "NUL-terminated"),
    (b"\x02\x02" + b"\xff\xff", "protocol is null"),
])
def test_bad_fields(payload, why):
    with pytest.raises(ajp.AjpError, match=why):
        ajp.parse_forward_request(payload)


def test_unknown_header_and_attribute_codes_are_refused():
    good = ajp.forward_request("GET", "/", headers=[("host", "h")])[4:]
    bad_header = good.replace(b"\xa0\x0b", b"\xa0\x20")
    with pytest.raises(ajp.AjpError, match="header code"):
        ajp.parse_forward_request(bad_header)
    bad_attr = good[:-1] + b"\x42\x00\x01x\x00\xff"
    with pytest.raises(ajp.AjpError, match="attribute code"):
        ajp.parse_forward_request(bad_attr)
    assert ajp.parse_forward_request(good).header("host") == "h"


def test_fuzz_random_bytes_and_mutations_raise_only_ajp_error():
    rng = random.Random(20200224)
    seeds = [p[4:] for p in (ajp.forward_request("POST", "/a?b", headers=[("host", "h"), ("cookie", "c=1")],
                                                 attributes=[("secret", SECRET), ("query_string", "q"),
                                                             ("ssl_key_size", 3)],
                                                 request_attributes=[("n", "v")]),
                             ajp.forward_request("SEARCH", "/"))]
    for i in range(5000):
        if i % 2:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 80)))
            data = b"\x02" + data
        else:
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            data = bytes(data)
        try:
            ajp.parse_forward_request(data)
        except ajp.AjpError:
            pass
        try:
            ajp.parse_body_chunk(data)
        except ajp.AjpError:
            pass
    for _ in range(2000):
        decoder = ajp.PacketDecoder()
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
        if rng.random() < 0.5:
            data = b"\x12\x34" + data
        try:
            for payload in decoder.feed(data):
                assert len(payload) <= 8188
        except ajp.AjpError:
            pass


# -- the policy ---------------------------------------------------------------------------------------
def parsed(**kwargs):
    return ajp.parse_forward_request(ajp.forward_request("GET", "/", **kwargs)[4:])


def test_secret_policy():
    with_secret = parsed(attributes=[("secret", SECRET)])
    assert ajp.refusal(with_secret, SECRET, True, None) is None
    assert "wrong" in ajp.refusal(parsed(attributes=[("secret", "other")]), SECRET, True, None)
    assert "no secret" in ajp.refusal(parsed(), SECRET, True, None)
    assert "no secret" in ajp.refusal(parsed(), SECRET, False, None)   # configured: always required
    assert ajp.refusal(parsed(), None, True, None) is not None         # required and none configured
    assert ajp.refusal(parsed(), None, False, None) is None            # explicitly open (loopback only)


def test_request_attribute_policy():
    known = parsed(attributes=[("secret", SECRET)], request_attributes=[("AJP_REMOTE_PORT", "1"),
                                                                        ("AJP_SSL_PROTOCOL", "TLSv1.3")])
    assert ajp.refusal(known, SECRET, True, None) is None
    odd = parsed(attributes=[("secret", SECRET)], request_attributes=[("javax.servlet.include.request_uri", "/x")])
    assert "allowedRequestAttributesPattern" in ajp.refusal(odd, SECRET, True, None)
    assert ajp.refusal(odd, SECRET, True, re.compile(r"javax\.servlet\.include\..*")) is None
    assert ajp.refusal(odd, SECRET, True, re.compile(r"javax")) is not None     # matched whole, not searched


# -- the container's packets ---------------------------------------------------------------------------
def container_packets(data):
    return [ajp.parse_container_packet(p) for p in ajp.container_decoder(ajp.MAX_PACKET_SIZE).feed(data)]


def test_response_packets_round_trip():
    head = ajp.send_headers(200, "OK", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("X-Y", "z")])
    assert head[4:7] == b"\x04\x00\xc8"
    assert b"\xa0\x01" in head and b"\xa0\x07" in head                  # coded names
    body = ajp.body_chunks(b"x" * 20000, 8192)
    got = container_packets(head + body + ajp.end_response(True) + ajp.end_response(False) + ajp.CPONG_PACKET
                            + ajp.get_body_chunk(8192))
    assert got[0] == ("headers", 200, "OK", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("X-Y", "z")])
    chunks = [p[1] for p in got if p[0] == "body"]
    assert b"".join(chunks) == b"x" * 20000 and max(len(c) for c in chunks) == 8184
    assert got[-4:] == [("end", True), ("end", False), ("cpong",), ("get", 8186)]
    assert all(len(p) <= 8192 for p in ajp.container_decoder(8192).feed(body))


def test_response_headers_refuse_injection_and_oversize():
    with pytest.raises(ValueError):
        ajp.send_headers(200, "OK", [("X", "a\r\nSet-Cookie: evil=1")])
    with pytest.raises(ValueError):
        ajp.send_headers(200, "OK", [("X", "\u20ac")])           # not latin-1
    with pytest.raises(ValueError, match="packetSize"):
        ajp.send_headers(200, "OK", [("X", "y" * 9000)])
    assert ajp.send_headers(200, "OK", [("X", "y" * 9000)], 16384)   # a larger packetSize takes it


def test_packet_size_bounds():
    assert ajp.check_packet_size(8192) == 8192 and ajp.check_packet_size(65536) == 65536
    for bad in (1024, 65537):
        with pytest.raises(ValueError):
            ajp.check_packet_size(bad)


def test_integer_fields_are_big_endian():
    payload = ajp.forward_request("GET", "/", server_port=0x1F90)[4:]
    assert struct.pack(">H", 0x1F90) in payload and ajp.parse_forward_request(payload).server_port == 8080
