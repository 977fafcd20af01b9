"""EncryptInterceptor (TestEncryptInterceptor / TestEncryptInterceptorAlgorithms, piped directly)."""
import logging
import os
import time

import gevent
import pytest

from pycat.errors import ChannelError, LifecycleError
from pycat.tribes import channel as ch
from pycat.tribes.group.interceptors.encrypt import EncryptInterceptor
from pycat.tribes.group.interceptors.tcp_failure_detector import TcpFailureDetector
from pycat.tribes.io.channel_data import ChannelData
from pycat.tribes.member import Member

from _channel_fakes import Collect, FakeNetwork

KEY = "cafebabedeadbeefbeefcafecafebabe"


class Pipe:
    """src -> dest EncryptInterceptors with no network in between."""

    def __init__(self, key=KEY, dest_key=None, algorithm="AES/GCM/NoPadding", **dest_attrs):
        self.src, self.dest = EncryptInterceptor(), EncryptInterceptor()
        for i, k in ((self.src, key), (self.dest, dest_key or key)):
            i.encryption_key = k
            i.encryption_algorithm = algorithm
            i.configure()
        for k, v in dest_attrs.items():
            setattr(self.dest, k, v)
        self.wire = []
        self.got = []
        pipe = self

        class Down:
            def send_message(self, members, msg, payload):
                pipe.wire.append(msg.message)
                pipe.dest.message_received(ChannelData(msg.options, msg.timestamp, msg.unique_id,
                                                       msg.address, msg.message))

        class Up:
            def message_received(self, msg):
                pipe.got.append(msg.message)
        self.src.next = Down()
        self.dest.previous = Up()
        self.me = Member.local("127.0.0.1", 4000)

    def send(self, data, timestamp=0):
        self.src.send_message([], ChannelData(1, timestamp, os.urandom(16), self.me, data), None)


@pytest.mark.parametrize("key", [KEY, KEY + "0123456789abcdef", KEY * 2])
@pytest.mark.parametrize("size", [1, 44, 1024 * 1024])
def test_round_trip(key, size):
    p = Pipe(key)
    data = os.urandom(size)
    p.send(data)
    assert p.got == [data]


def test_same_plaintext_gives_different_ciphertext():
    p = Pipe()
    p.send(b"same")
    p.send(b"same")
    assert p.got == [b"same", b"same"] and p.wire[0] != p.wire[1]


def test_many_greenlets():
    p = Pipe()
    gevent.joinall([gevent.spawn(lambda k=k: [p.send(b"%d-%d" % (k, i)) for i in range(10)]) for k in range(100)])
    assert sorted(p.got) == sorted(b"%d-%d" % (k, i) for k in range(100) for i in range(10))


def test_wrong_key_and_tamper_are_dropped(caplog):
    p = Pipe(dest_key="00" * 16)
    with caplog.at_level(logging.WARNING):
        p.send(b"secret")
    assert p.got == [] and "decryption failed" in caplog.text
    q = Pipe()
    q.send(b"fine")
    tampered = bytearray(q.wire[0])
    tampered[-1] ^= 1
    q.dest.message_received(ChannelData(1, 0, os.urandom(16), q.me, bytes(tampered)))
    q.dest.message_received(ChannelData(1, 0, os.urandom(16), q.me, b"short"))
    assert q.got == [b"fine"] and q.dest.dropped == 2


def test_replayed_ciphertext_is_delivered_once():
    p = Pipe()
    p.send(b"pay me")
    p.dest.message_received(ChannelData(1, 0, os.urandom(16), p.me, p.wire[0]))
    assert p.got == [b"pay me"]


def test_old_message_rejected_by_time_window():
    p = Pipe(replay_window_time=50)
    now = int(time.time() * 1000)
    p.send(b"old", timestamp=now - 1000)
    p.send(b"new", timestamp=now)
    assert p.got == [b"new"]


def test_count_window_evicts_and_floor_rejects_old_replays():
    p = Pipe(replay_window_message_count=2)
    now = int(time.time() * 1000)
    for i in range(4):
        p.send(b"m%d" % i, timestamp=now + i)
    assert len(p.got) == 4
    p.dest.message_received(ChannelData(1, 0, os.urandom(16), p.me, p.wire[0]))
    assert len(p.got) == 4


def test_count_window_out_of_order_all_delivered():
    p = Pipe(replay_window_message_count=2)
    now = int(time.time() * 1000)
    for d in (300, 100, 200, 225, 250):
        p.send(b"%d" % d, timestamp=now + d)
    assert len(p.got) == 5


@pytest.mark.parametrize("algorithm", ["AES/CBC/PKCS5Padding", "AES/CFB/PKCS5Padding", "AES/OFB/PKCS5Padding"])
def test_legacy_modes_round_trip_with_warning(algorithm, caplog):
    with caplog.at_level(logging.WARNING):
        p = Pipe(algorithm=algorithm)
    p.send(b"legacy")
    assert p.got == [b"legacy"] and "malleable" in caplog.text


@pytest.mark.parametrize("algorithm", ["AES/ECB/PKCS5Padding", "AES/CTR/NoPadding", "AES/CBC/NoPadding",
                                       "AES/GCM/PKCS5Padding", "AES/CCM/NoPadding", "AES/CFB8/NoPadding",
                                       "DES/CBC/PKCS5Padding", "AES", "AES/NONE/NoPadding", "AES/PCBC/PKCS5Padding"])
def test_refused_algorithms(algorithm):
    i = EncryptInterceptor()
    i.encryption_key = KEY
    i.encryption_algorithm = algorithm
    with pytest.raises(ValueError):
        i.configure()


@pytest.mark.parametrize("key", [None, "", "xyz", "abcd"])
def test_bad_keys(key):
    i = EncryptInterceptor()
    i.encryption_key = key
    with pytest.raises(ChannelError):
        i.configure()


def test_tcp_failure_detector_above_encrypt_fails_start():
    e = EncryptInterceptor()
    e.encryption_key = KEY
    c = FakeNetwork().channel(TcpFailureDetector(), e)
    with pytest.raises(ChannelError, match="before"):
        c.start_services(ch.DEFAULT)
    with pytest.raises(LifecycleError, match="before") as info:
        c.start()
    assert isinstance(info.value.__cause__, ChannelError) and c.coordinator.start_level == 0


def test_through_a_channel():
    net = FakeNetwork()

    def enc(key=KEY):
        e = EncryptInterceptor()
        e.encryption_key = key
        return e
    a, b, wrong = net.channel(enc()), net.channel(enc()), net.channel(enc("11" * 32))
    lb = Collect()
    b.add_channel_listener(lb)
    for c in (a, b, wrong):
        c.start()
    a.send([b.get_local_member()], {"x": 1}, 6)
    wrong.send([b.get_local_member()], {"x": 2}, 6)
    assert lb.messages == [{"x": 1}]
    from pycat.tribes.io import codec
    assert all(codec.dumps({"x": 1}) not in m.encode() for _, m in net.sent)  # never in clear


def test_legacy_format_has_no_timestamp_and_no_replay_check():
    p = Pipe()
    for i in (p.src, p.dest):
        i.legacy_format = True
    p.send(b"hello")
    assert len(p.wire[0]) == 12 + 5 + 16  # IV, payload, GCM tag: Tomcat 10.1.55's layout
    p.dest.message_received(ChannelData(1, 0, os.urandom(16), p.me, p.wire[0]))
    assert p.got == [b"hello", b"hello"]  # older Tomcat has no replay protection to match


def _independent_encrypt(algorithm, plain):
    """IV ‖ ciphertext made with the cryptography primitives directly, not with pycat's code."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    key = bytes.fromhex(KEY)
    if "GCM" in algorithm:
        iv = os.urandom(12)
        return iv + AESGCM(key).encrypt(iv, plain, None)
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + enc.update(padder.update(plain) + padder.finalize()) + enc.finalize()


@pytest.mark.parametrize("algorithm", ["AES/GCM/NoPadding", "AES/CBC/PKCS5Padding"])
def test_both_wire_formats_against_an_independent_encoder(algorithm):
    """The two layouts Tomcat has used, built by hand: the current one (IV ‖ enc(timestamp ‖
    payload), Tomcat 10.1.60 and later) is read by default, the old one (IV ‖ enc(payload),
    10.1.55) only with legacyFormat; each reading the other's layout fails to yield the payload."""
    import struct
    payload = b"session data \x00\x01\x02" * 7
    now = int(time.time() * 1000)
    current = _independent_encrypt(algorithm, struct.pack(">q", now) + payload)
    old = _independent_encrypt(algorithm, payload)

    def receiver(legacy):
        p = Pipe(algorithm=algorithm)
        p.dest.legacy_format = legacy
        return p
    p = receiver(False)
    p.dest.message_received(ChannelData(1, 0, os.urandom(16), p.me, current))
    p.dest.message_received(ChannelData(1, 0, os.urandom(16), p.me, old))  # "session " read as a timestamp
    assert p.got == [payload] and p.dest.dropped == 1
    q = receiver(True)
    q.dest.message_received(ChannelData(1, 0, os.urandom(16), q.me, old))
    q.dest.message_received(ChannelData(1, 0, os.urandom(16), q.me, current))
    assert q.got[0] == payload and q.got[1] == struct.pack(">q", now) + payload  # no timestamp expected
    # and what pycat writes in each format is what the independent encoder wrote
    for legacy, expected in ((False, struct.pack(">q", now) + payload), (True, payload)):
        i = receiver(legacy).src
        i.legacy_format = legacy
        assert _independent_decrypt(algorithm, i.encrypt(now, payload)) == expected


def _independent_decrypt(algorithm, data):
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    key = bytes.fromhex(KEY)
    if "GCM" in algorithm:
        return AESGCM(key).decrypt(data[:12], data[12:], None)
    dec = Cipher(algorithms.AES(key), modes.CBC(data[:16])).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(dec.update(data[16:]) + dec.finalize()) + unpadder.finalize()
