"""Interop with a real Tomcat Tribes peer (Debian's libtomcat10-java, Java 17).

tests/tribes/java/TribesPeer.java is compiled with javac into a temp dir and started as a
subprocess: a GroupChannel with McastService on a test-unique port bound to 127.0.0.1 and a
NioReceiver on 127.0.0.1. pycat and Java must see each other as members, exchange BYTE_MESSAGE
both ways with and without USE_ACK (and sync ack, including a FAIL_ACK from Java), and each must
see the other leave when it stops.
"""
import os
import pathlib
import shutil
import socket as pysocket

import gevent
import pytest
from gevent import subprocess

from pycat.errors import ChannelError
from pycat.tribes import channel as ch

from pycat.tribes.group.interceptors.message_dispatch import MessageDispatchInterceptor
from pycat.tribes.group.interceptors.tcp_failure_detector import TcpFailureDetector
from test_group import make_channel, mcast_port
from _channel_fakes import wait_for

JARS = ["/usr/share/java/tomcat10-tribes.jar", "/usr/share/java/tomcat10-juli.jar"]
SOURCE = pathlib.Path(__file__).parent / "java" / "TribesPeer.java"
# Generous waits: a JVM starting (and JIT-compiling the membership and NIO code) on a loaded
# 2-core CI box can take many seconds for what takes milliseconds here; the waits end as soon
# as the condition holds, so they cost nothing when things are fast.
WAIT = 30.0

missing = [j for j in JARS if not os.path.exists(j)]
if not shutil.which("javac") or not shutil.which("java"):
    pytestmark = pytest.mark.skip(reason="java/javac not on PATH (install a JDK 17)")
elif missing:
    pytestmark = pytest.mark.skip(reason="Tomcat Tribes jar missing: %s (apt install libtomcat10-java)"
                                  % ", ".join(missing))
else:
    pytestmark = pytest.mark.timeout(240)


class JavaPeer:
    def __init__(self, classes, port):
        cp = os.pathsep.join(JARS + [str(classes)])
        self.proc = subprocess.Popen(
            ["java", "-Djava.net.preferIPv4Stack=true", "-cp", cp, "TribesPeer", str(port), str(_free_tcp_port())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.lines = []
        self.reader = gevent.spawn(self._read)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def command(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def wait_line(self, prefix, timeout=WAIT, after=0):
        wait_for(lambda: any(l.startswith(prefix) for l in self.lines[after:]), timeout=timeout)
        return next(l for l in self.lines[after:] if l.startswith(prefix))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.kill()


def _free_tcp_port():
    s = pysocket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    out = tmp_path_factory.mktemp("tribes-java")
    cp = os.pathsep.join(JARS)
    result = subprocess.run(["javac", "-cp", cp, "-d", str(out), str(SOURCE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out


def test_pycat_and_tomcat_tribes_talk(classes):
    port = mcast_port()
    java = JavaPeer(classes, port)
    # both sides run the howto stack: each side's TCP liveness probes must be understood by the other
    py = make_channel(port, TcpFailureDetector(), MessageDispatchInterceptor(), frequency=200, drop_time=2000)
    try:
        started = java.wait_line("STARTED", timeout=2 * WAIT)
        java_name = started.split()[1]
        py.start()
        me = py.get_local_member().name
        # both see each other as members
        wait_for(lambda: any(m.name == java_name for m in py.watch.members), timeout=WAIT)
        java.wait_line("ADDED " + me)
        peer = [m for m in py.get_members() if m.name == java_name]

        # pycat -> Java, without and with acks
        for options, payload in ((0, b"no ack"), (ch.USE_ACK, b"use ack"), (ch.USE_ACK | ch.SYNCHRONIZED_ACK, b"sync"),
                                 (ch.ASYNCHRONOUS, b"async")):
            py.send(peer, payload, options)
            java.wait_line("RECV %s FROM %s" % (payload.hex(), me))
        # a listener exception in Java comes back as FAIL_ACK naming the member
        with pytest.raises(ChannelError) as info:
            py.send(peer, b"fail", ch.USE_ACK | ch.SYNCHRONIZED_ACK)
        assert [m.name for m in info.value.faulty] == [java_name]

        # Java -> pycat, without and with acks (Java's send with USE_ACK returns only once acked)
        for options, payload in ((1, b"from java"), (3, b"java ack"), (7, b"java sync"), (9, b"java async")):
            mark = len(java.lines)
            java.command("send %d %s" % (options, payload.hex()))
            assert java.wait_line("SENT", after=mark) == "SENT"
            wait_for(lambda: payload in py.inbox.messages, timeout=WAIT)
            assert [s.name for m, s in py.inbox.got if m == payload] == [java_name]
        py.inbox.fail = lambda m: m == b"pycat fails"
        mark = len(java.lines)
        java.command("send 7 %s" % b"pycat fails".hex())
        assert "ERROR" in java.wait_line("ERROR", after=mark)

        # Java leaves: pycat sees it go; then pycat leaves and Java sees that
        java2 = JavaPeer(classes, port)
        try:
            name2 = java2.wait_line("STARTED", timeout=2 * WAIT).split()[1]
            wait_for(lambda: any(m.name == name2 for m in py.watch.members), timeout=WAIT)
            java2.command("stop")
            java2.wait_line("STOPPED")
            wait_for(lambda: all(m.name != name2 for m in py.watch.members), timeout=WAIT)
        finally:
            java2.close()
        py.stop()
        java.wait_line("GONE " + me)
    finally:
        py.stop()
        java.command("stop")
        try:
            java.wait_line("STOPPED")
        finally:
            java.close()


@pytest.mark.parametrize("algorithm", ["AES/GCM/NoPadding", "AES/CBC/PKCS5Padding"])
def test_encryption_matches_tomcat(classes, algorithm):
    """Tomcat's own EncryptInterceptor (this jar predates the 2026 replay protection, so pycat runs
    with legacyFormat) decrypts what pycat encrypts and the other way round; a wrong key fails."""
    from pycat.tribes.group.interceptors.encrypt import EncryptInterceptor
    key = "cafebabedeadbeefbeefcafecafebabe"
    py = EncryptInterceptor()
    py.encryption_key, py.encryption_algorithm, py.legacy_format = key, algorithm, True
    py.configure()
    java = JavaPeer(classes, mcast_port())
    try:
        java.wait_line("STARTED", timeout=2 * WAIT)
        payload = b"session data \x00\x01\x02" * 7
        mark = len(java.lines)
        java.command("encrypt %s %s %s" % (algorithm, key, payload.hex()))
        from_java = bytes.fromhex(java.wait_line("ENC", after=mark).split()[1])
        assert py.decrypt(from_java)[2] == payload
        mark = len(java.lines)
        java.command("decrypt %s %s %s" % (algorithm, key, py.encrypt(0, payload).hex()))
        assert java.wait_line("DEC", after=mark) == "DEC " + payload.hex()
        mark = len(java.lines)
        java.command("decrypt %s %s %s" % (algorithm, "00" * 16, py.encrypt(0, payload).hex()))
        wrong_key = java.wait_line("DEC", after=mark)
        if "GCM" in algorithm:
            assert wrong_key == "DEC none"     # authenticated: a wrong key is always rejected
        else:
            # CBC has no authentication: the garbage a wrong key yields ends in valid PKCS#5
            # padding about once in 256 tries, and Java then "decrypts" it; it never yields the payload
            assert wrong_key != "DEC " + payload.hex()
    finally:
        java.command("stop")
        java.close()
