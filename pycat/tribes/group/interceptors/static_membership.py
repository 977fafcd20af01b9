"""StaticMembershipInterceptor: members listed in server.xml (legacy static membership).

``<Member>`` children are added with ``add_member``; ``<LocalMember>`` with ``set_local_member``
(its missing host/port come from the receiver). On start the static members are announced as
added (up the stack, so a TcpFailureDetector above verifies them) and each is sent the
``Local StaticMember Notification Data`` message; on stop they get ``Local StaticMember Shutdown
Data``. Those notifications from a configured member become member_added / member_disappeared
(the latter as a graceful departure). ``get_members`` is the static members plus those below.
"""
import logging

from pycat.errors import ChannelError
from pycat.tribes import channel as ch
from pycat.tribes.group.interceptor import ChannelInterceptor
from pycat.tribes.group.interceptors.tcp_failure_detector import TcpFailureDetector
from pycat.tribes.io.channel_data import ChannelData
from pycat.tribes.member import SHUTDOWN_PAYLOAD

log = logging.getLogger(__name__)
MEMBER_START = b"Local StaticMember Notification Data"
MEMBER_STOP = b"Local StaticMember Shutdown Data"


class StaticMembershipInterceptor(ChannelInterceptor):
    def __init__(self):
        super().__init__()
        self.members = []
        self.local_member = None
        self._announced = False

    def add_member(self, member):
        if member not in self.members:
            self.members.append(member)

    def remove_member(self, member):
        if member in self.members:
            self.members.remove(member)

    def set_local_member(self, member):
        self.local_member = member
        if hasattr(member, "is_local"):
            member.is_local = True

    def start_services(self, flags=ch.DEFAULT):
        super().start_services(flags)
        if self.find_above(TcpFailureDetector) is None:
            log.warning("StaticMembershipInterceptor works best below a TcpFailureDetector")
        if not self._pinged_from_above():
            log.warning("StaticMembershipInterceptor needs a TcpPingInterceptor above it to keep members alive")
        # legacy setups start only SND_RX|SND_TX (channelStartOptions=3): announce once we can send
        if flags & (ch.SND_TX | ch.MBR_RX) and not self._announced:
            self._announced = True
            self.start()
            for member in list(self.members):
                self.spawn(self._announce, member)

    def _pinged_from_above(self):
        node = self.previous
        while node is not None:
            if getattr(node, "pings_members", False):
                return True
            node = getattr(node, "previous", None)
        return False

    def _announce(self, member):
        self.member_added(member)
        self._notify([member], MEMBER_START)

    def stop_services(self, flags=ch.DEFAULT):
        if flags & (ch.SND_TX | ch.MBR_RX) and self._announced:
            self._announced = False
            self.stop()
            self._notify(list(self.members), MEMBER_STOP)  # before the sender stops below us
        super().stop_services(flags)

    def _notify(self, members, data):
        local = self.get_local_member(False)
        if local is None or local.host is None:
            return
        msg = ChannelData.create(ch.BYTE_MESSAGE, local, data)
        try:
            ChannelInterceptor.send_message(self, members, msg, None)
        except ChannelError as exc:
            log.debug("static membership notification failed: %s", exc)

    def message_received(self, msg):
        data = msg.message
        if data == MEMBER_START or data == MEMBER_STOP:
            member = self._static(msg.address)
            if member is None:
                return
            if data == MEMBER_START:
                super().member_added(member)
            else:
                gone = member.copy() if hasattr(member, "copy") else member
                gone.command = SHUTDOWN_PAYLOAD
                super().member_disappeared(gone)
            return
        super().message_received(msg)

    def _static(self, member):
        for m in self.members:
            if m == member:
                return m
        return None

    def has_members(self):
        return bool(self.members) or super().has_members()

    def get_members(self):
        found = list(self.members)
        for m in super().get_members():
            if m not in found:
                found.append(m)
        return found

    def get_member(self, member):
        return self._static(member) or super().get_member(member)

    def get_local_member(self, inc_alive=False):
        below = super().get_local_member(inc_alive)
        local = self.local_member
        if local is None:
            return below
        if below is not None:
            if local.host is None:
                local.host = below.host
            if not local.port:
                local.port = below.port
        return local
