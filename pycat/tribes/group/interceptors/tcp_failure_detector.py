"""TcpFailureDetector: verify membership changes over TCP before believing them (Tomcat's namesake).

Multicast heartbeats get lost; a member that stopped heartbeating may still serve TCP. So:
* a "disappeared" member is probed over TCP first: dead -> removed and reported; alive -> kept as
  a remove-suspect (re-checked each heartbeat, forgotten after ``removeSuspectsTimeout`` s);
  a graceful departure (command BABY-ALEX) is believed at once;
* an "added" member is reported only if its TCP port answers; otherwise (static members) it is
  kept as an add-suspect and re-probed each heartbeat;
* a send that failed for a member (other than a remote FAIL_ACK) triggers the same verification.

The probe connects with ``connectTimeout``; with ``performSendTest`` it writes one framed
ChannelData carrying the 64-byte TCP_FAIL_DETECT payload (Tomcat's bytes, so a Java peer swallows
it too), with ``performReadTest`` it asks for an ACK and waits ``readTestTimeout`` for it.
Incoming probes are swallowed. Our own view of the members is kept in ``_members``.
"""
import logging
import time

from gevent import socket

from pycat.attrs import Attr
from pycat.errors import ChannelError
from pycat.tribes import channel as ch
from pycat.tribes.group.interceptor import MemberViewInterceptor

log = logging.getLogger(__name__)

TCP_FAIL_DETECT = bytes([
    79, 167, 115, 72, 121, 130, 67, 201, 159, 111, 137, 128, 161, 91, 7, 20, 125, 217, 82, 91, 235, 241,
    67, 154, 183, 126, 190, 143, 129, 103, 30, 182, 55, 21, 190, 135, 69, 126, 76, 168, 191, 10, 77, 19,
    83, 56, 21, 50, 85, 246, 148, 183, 58, 250, 64, 120, 145, 4, 125, 215, 114, 132, 192, 213])


class TcpFailureDetector(MemberViewInterceptor):
    connect_timeout = Attr(int, 1000, "ms for the TCP probe's connect")
    perform_send_test = Attr(bool, True, "write a probe message after connecting")
    perform_read_test = Attr(bool, False, "ask for an ACK and wait for it")
    read_test_timeout = Attr(int, 5000, "ms to wait for the probe's ACK")
    remove_suspects_timeout = Attr(int, 300, "s after which a still-answering suspect is forgotten (<0 never)")

    def __init__(self):
        super().__init__()
        self.remove_suspects = {}   # member -> time suspected
        self.add_suspects = {}

    # -- the probe ------------------------------------------------------------------------------
    def member_alive(self, member):
        if member.is_shutdown:
            return False
        try:
            sock = socket.create_connection((member.hostname, member.port),
                                            timeout=max(0.001, self.connect_timeout / 1000.0))
        except (OSError, ValueError):
            return False
        try:
            sock.settimeout(max(0.001, self.read_test_timeout / 1000.0))
            if self.perform_send_test:
                from pycat.tribes.io.channel_data import ChannelData
                options = ch.BYTE_MESSAGE | (ch.USE_ACK if self.perform_read_test else 0)
                local = self.get_local_member(False)
                if local is None:
                    return True
                sock.sendall(ChannelData.create(options, local, TCP_FAIL_DETECT).encode_frame())
                if self.perform_read_test:
                    return bool(sock.recv(64))
            return True
        except OSError as exc:
            log.debug("probe of %s failed: %s", member.name, exc)
            return False
        finally:
            sock.close()

    # -- membership events ----------------------------------------------------------------------
    def member_added(self, member):
        if member in self.remove_suspects:
            del self.remove_suspects[member]
            self._members[member] = member
            return
        if member in self._members:
            self._members[member] = member
            return
        if self.member_alive(member):
            self._members[member] = member
            self.add_suspects.pop(member, None)
            super().member_added(member)
        else:
            log.info("member %s announced itself but its TCP port is dead; not adding it", member.name)
            self.add_suspects[member] = time.monotonic()

    def member_disappeared(self, member):
        if member.is_shutdown:
            self._forget(member)
            super().member_disappeared(member)
            return
        if member not in self._members:
            self.add_suspects.pop(member, None)
            return
        log.info("member %s reported gone; verifying over TCP", member.name)
        if self.member_alive(member):
            log.info("member %s still answers over TCP; keeping it as a suspect", member.name)
            self.remove_suspects.setdefault(member, time.monotonic())
        else:
            self._forget(member)
            super().member_disappeared(member)

    def _forget(self, member):
        self._members.pop(member, None)
        self.remove_suspects.pop(member, None)
        self.add_suspects.pop(member, None)

    # -- messages -------------------------------------------------------------------------------
    def send_message(self, members, msg, payload):
        try:
            self.next.send_message(members, msg, payload)
        except ChannelError as exc:
            from pycat.tribes.transport.errors import RemoteProcessError
            for member, reason in exc.faulty.items():
                if not isinstance(reason, RemoteProcessError) and hasattr(member, "is_shutdown"):
                    self.member_disappeared(member)
            raise

    def message_received(self, msg):
        message = msg.message
        if len(message) == 64 and message == TCP_FAIL_DETECT and self.ok_to_process(msg.options):
            return
        previous = self.previous
        if previous is not None:
            previous.message_received(msg)

    # -- periodic verification -----------------------------------------------------------------
    def heartbeat(self):
        try:
            self.check_members(False)
        finally:
            super().heartbeat()

    def check_members(self, force=False):
        below = list(self.next.get_members()) if self.next is not None else []
        for member in below:
            if member not in self._members and member not in self.remove_suspects:
                if self.member_alive(member):
                    self._members[member] = member
                    self.add_suspects.pop(member, None)
                    super().member_added(member)
        now = time.monotonic()
        for member, since in list(self.remove_suspects.items()):
            if not self.member_alive(member):
                self._forget(member)
                super().member_disappeared(member)
            elif 0 <= self.remove_suspects_timeout < now - since:
                del self.remove_suspects[member]
        for member in list(self.add_suspects):
            if self.member_alive(member):
                self._members[member] = member
                del self.add_suspects[member]
                super().member_added(member)
        if force:
            for member in list(self._members):
                if member not in below and not self.member_alive(member):
                    self._forget(member)
                    super().member_disappeared(member)
