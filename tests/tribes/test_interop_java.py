"""Interop with a real Tomcat Tribes peer (Debian's libtomcat10-java, Java 17).

tests/tribes/java/TribesPeer.java is compiled with javac into a temp dir and started as a
subprocess: a GroupChannel with McastService on a test-unique port bound to 127.0.0.1 and a
NioReceiver on 127.0.0.1. pycat and Java must see each other as members, exchange BYTE_MESSAGE
both ways with and without USE_ACK (and sync ack, including a FAIL_ACK from Java), and each must
see the other leave when it stops.

The EncryptInterceptor check runs Tomcat's own interceptor in isolation. Tomcat changed its wire
format when it added replay protection (10.1.60 has it, 10.1.55 does not), so the test reads the
jar it finds (``tomcat_encrypt_format``) and uses pycat's default format or ``legacyFormat`` to
match; the pure layout tests of both formats are in test_interceptor_encrypt.py.
"""
import os
import pathlib
import re
import shutil
import socket as pysocket
import zipfile

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
    needs_java = pytest.mark.skip(reason="java/javac not on PATH (install a JDK 17)")
elif missing:
    needs_java = pytest.mark.skip(reason="Tomcat Tribes jar missing: %s (apt install libtomcat10-java)"
                                  % ", ".join(missing))
else:
    needs_java = pytest.mark.timeout(240)
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


@needs_java
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


def tomcat_encrypt_format(jar=JARS[0]):
    """(Implementation-Version from the jar's manifest, True when its EncryptInterceptor speaks the
    legacy format). The class itself decides, not the version number: the replay protection came
    to each branch (9.0, 10.1, 11) in a different release, and a distribution may backport it. A
    class with the replay protection has the setReplayWindowTime setter in its constant pool."""
    with zipfile.ZipFile(jar) as z:
        manifest = z.read("META-INF/MANIFEST.MF").decode("utf-8", "replace")
        cls = z.read("org/apache/catalina/tribes/group/interceptors/EncryptInterceptor.class")
    found = re.search(r"^Implementation-Version:\s*(\S+)", manifest, re.M)
    return (found.group(1) if found else "unknown"), b"setReplayWindowTime" not in cls


def test_format_detection_reads_the_class(tmp_path):
    """The probe tells the two formats apart on jars built here (no JVM needed): a class that
    has the replay-window setter is the current format, one without it the legacy one."""
    for has_replay, legacy in ((True, False), (False, True)):
        jar = tmp_path / ("replay.jar" if has_replay else "old.jar")
        with zipfile.ZipFile(jar, "w") as z:
            z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nImplementation-Version: 10.1.%d\n"
                       % (60 if has_replay else 55))
            z.writestr("org/apache/catalina/tribes/group/interceptors/EncryptInterceptor.class",
                       b"\xca\xfe\xba\xbe" + (b"\x00\x13setReplayWindowTime" if has_replay else b"\x00\x04stop"))
        assert tomcat_encrypt_format(str(jar)) == ("10.1.60" if has_replay else "10.1.55", legacy)


@needs_java
@pytest.mark.parametrize("algorithm", ["AES/GCM/NoPadding", "AES/CBC/PKCS5Padding"])
def test_encryption_matches_tomcat(classes, algorithm):
    """Tomcat's own EncryptInterceptor decrypts what pycat encrypts and the other way round, in the
    format of the jar on this machine: pycat's default format for a Tomcat with the replay
    protection (10.1.60 has it), legacyFormat for an older one (10.1.55). The other format is
    refused by that Tomcat (so the detection matters), and a wrong key fails."""
    import time
    from pycat.tribes.group.interceptors.encrypt import EncryptInterceptor
    version, legacy = tomcat_encrypt_format()
    key = "cafebabedeadbeefbeefcafecafebabe"

    def interceptor(legacy_format):
        i = EncryptInterceptor()
        i.encryption_key, i.encryption_algorithm, i.legacy_format = key, algorithm, legacy_format
        i.configure()
        return i
    py, other = interceptor(legacy), interceptor(not legacy)
    java = JavaPeer(classes, mcast_port())
    try:
        java.wait_line("STARTED", timeout=2 * WAIT)
        payload = b"session data \x00\x01\x02" * 7

        def java_says(command):
            mark = len(java.lines)
            java.command(command)
            return java.wait_line("DEC" if command.startswith("decrypt") else "ENC", after=mark)
        from_java = bytes.fromhex(java_says("encrypt %s %s %s" % (algorithm, key, payload.hex())).split()[1])
        timestamp, _, data = py.decrypt(from_java)
        assert data == payload, "Tomcat %s (legacy=%s)" % (version, legacy)
        if not legacy:  # Tomcat stamps the plaintext with its clock: ours, give or take a minute
            assert abs(timestamp - time.time() * 1000) < 60000
            assert py.replay_check(timestamp, from_java[:12 if "GCM" in algorithm else 16]) is None
        now = int(time.time() * 1000)
        assert java_says("decrypt %s %s %s" % (algorithm, key, py.encrypt(now, payload).hex())) \
            == "DEC " + payload.hex(), "Tomcat %s (legacy=%s)" % (version, legacy)
        # the other format is not what this Tomcat reads: the detection is what made the above pass
        assert java_says("decrypt %s %s %s" % (algorithm, key, other.encrypt(now, payload).hex())) \
            != "DEC " + payload.hex()
        wrong_key = java_says("decrypt %s %s %s" % (algorithm, "00" * 16, py.encrypt(now, payload).hex()))
        if "GCM" in algorithm:
            assert wrong_key == "DEC none"     # authenticated: a wrong key is always rejected
        else:
            # CBC has no authentication: the garbage a wrong key yields ends in valid PKCS#5
            # padding about once in 256 tries, and Java then "decrypts" it; it never yields the payload
            assert wrong_key != "DEC " + payload.hex()
    finally:
        java.command("stop")
        java.close()
