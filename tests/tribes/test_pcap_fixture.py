"""Ground truth: a capture of two real Tomcat 10.1 nodes, decoded and re-encoded byte for byte.

The pcap is read with the stdlib: a 24-byte global header, then records of a 16-byte header and
the captured bytes; link layers DLT_NULL, Ethernet, Linux SLL/SLL2 and raw IP are understood.
TCP payloads are reassembled per direction by sequence number and fed to FrameDecoder in random
chunk sizes, as a socket would deliver them.
"""
import collections
import pathlib
import random
import struct

import pytest

from pycat.tribes.io.channel_data import ChannelData, is_ack, is_fail_ack
from pycat.tribes.io.framing import FrameDecoder
from pycat.tribes.member import MEMBER_BEGIN, Member

# a capture of two real Tomcat 10.1 nodes clustered with the how-to configuration (see tests/fixtures)
PCAP = pathlib.Path(__file__).parents[1] / "fixtures" / "tomcat10-tribes-lo.pcap"


def _link_payload(linktype, frame, endian):
    """The IPv4 packet inside one captured frame, or None."""
    if linktype == 0:  # DLT_NULL: 4-byte address family in the capturing host's byte order
        family = struct.unpack(endian + "I", frame[:4])[0]
        return frame[4:] if family == 2 else None
    if linktype == 1:  # Ethernet
        offset, ethertype = 14, struct.unpack(">H", frame[12:14])[0]
        while ethertype in (0x8100, 0x88A8):  # VLAN tags
            ethertype = struct.unpack(">H", frame[offset + 2:offset + 4])[0]
            offset += 4
        return frame[offset:] if ethertype == 0x0800 else None
    if linktype == 113:  # Linux cooked capture v1
        return frame[16:] if struct.unpack(">H", frame[14:16])[0] == 0x0800 else None
    if linktype == 276:  # Linux cooked capture v2
        return frame[20:] if struct.unpack(">H", frame[0:2])[0] == 0x0800 else None
    if linktype in (12, 14, 101, 228):  # raw IP(v4)
        return frame
    raise AssertionError("unsupported pcap link type %d" % linktype)


def read_pcap(path):
    """Yield ('udp'|'tcp', fields) for every IPv4 UDP datagram / TCP segment in a pcap file."""
    data = path.read_bytes()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise AssertionError("not a pcap file (pcapng is not supported): %r" % magic)
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF
    offset = 24
    while offset + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[offset + 8:offset + 12])[0]
        frame = data[offset + 16:offset + 16 + incl]
        offset += 16 + incl
        ip = _link_payload(linktype, frame, endian)
        if ip is None or ip[0] >> 4 != 4:
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        proto, src, dst = ip[9], ip[12:16], ip[16:20]
        l4 = ip[ihl:total]
        if proto == 17:
            sport, dport = struct.unpack(">HH", l4[:4])
            yield "udp", (src, sport, dst, dport, l4[8:])
        elif proto == 6:
            sport, dport, seq = struct.unpack(">HHI", l4[:8])
            flags = l4[13]
            yield "tcp", (src, sport, dst, dport, seq, flags, l4[(l4[12] >> 4) * 4:])


def tcp_streams(segments):
    """{(src, sport, dst, dport): bytes} reassembled by sequence number (duplicates/overlaps dropped)."""
    by_flow = collections.defaultdict(list)
    isn = {}
    for src, sport, dst, dport, seq, flags, payload in segments:
        flow = (src, sport, dst, dport)
        if flags & 0x02:  # SYN consumes one sequence number
            isn[flow] = (seq + 1) & 0xFFFFFFFF
        if payload:
            by_flow[flow].append((seq, payload))
    streams = {}
    for flow, parts in by_flow.items():
        base = isn.get(flow, min(seq for seq, _ in parts))
        parts = sorted((((seq - base) & 0xFFFFFFFF), payload) for seq, payload in parts)
        out = bytearray()
        for rel, payload in parts:
            assert rel <= len(out), "gap in TCP stream %r" % (flow,)
            out += payload[len(out) - rel:]
        streams[flow] = bytes(out)
    return streams


@pytest.fixture(scope="module")
def capture():
    udp, tcp = [], []
    for kind, fields in read_pcap(PCAP):
        (udp if kind == "udp" else tcp).append(fields)
    return udp, tcp


def test_every_membership_datagram_decodes_and_reencodes_byte_for_byte(capture):
    udp, _ = capture
    records = [payload for *_, payload in udp if payload.startswith(MEMBER_BEGIN)]
    assert len(records) == len(udp) > 20
    shutdowns = 0
    ids = set()
    for record in records:
        member = Member.decode(record)
        assert member.encode(refresh_alive=False) == record
        # rebuilt from the fields alone (no cached bytes): still identical
        rebuilt = Member(member.host, member.port, member.secure_port, member.udp_port, member.unique_id,
                         member.domain, member.payload, member.command, member.alive_time)
        assert rebuilt.encode(refresh_alive=False) == record and rebuilt == member
        assert member.hostname == "127.0.0.1" and member.port in (4000, 4001)
        assert member.secure_port == -1 and member.udp_port == -1
        ids.add((member.port, member.unique_id))
        if member.is_shutdown:
            shutdowns += 1
            assert len(record) == 86
        else:
            assert len(record) == 77
    assert shutdowns == 2  # both nodes stopped gracefully
    assert len(ids) == 2


def test_every_tcp_frame_decodes_and_channel_data_reencodes_byte_for_byte(capture):
    udp, tcp = capture
    members = {Member.decode(payload) for *_, payload in udp}
    streams = tcp_streams(tcp)
    rng = random.Random(2003)
    packages = acks = 0
    for flow, stream in streams.items():
        decoder = FrameDecoder()
        bodies = []
        pos = 0
        while pos < len(stream):
            step = rng.randint(1, 64)
            bodies += decoder.feed(stream[pos:pos + step])
            pos += step
        assert decoder.buffered == 0
        assert bodies, "no frame in %r" % (flow,)
        for body in bodies:
            if is_ack(body) or is_fail_ack(body):
                acks += 1
                assert flow[1] in (4000, 4001)  # acks flow back from the receiver
                continue
            data = ChannelData.decode(body)
            assert data.encode() == body
            assert data.address.encode(refresh_alive=False) == body[36:36 + len(data.address.encode(False))]
            assert data.address in members
            assert len(data.unique_id) == 16
            packages += 1
    assert packages == 10
    assert acks == 1
