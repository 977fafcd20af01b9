"""StaticMembershipInterceptor: members listed in server.xml (legacy static membership).

``<Member>`` children are added with ``add_member``; ``<LocalMember>`` with ``set_local_member``
(its missing host/port come from the receiver). On start the static members are announced as
added (up the stack, so a TcpFailureDetector above verifies them) and each is sent the
``Local StaticMember Notification Data`` message, with a synchronous ACK: the channel's start waits
(at most ``startWait`` ms, all members at once) until the stack above has checked every member and
the live ones have taken the notification in, so the members are known when the start returns
and they know this node. On stop they get ``Local StaticMember Shutdown Data``, acknowledged too
(the peers have dropped this node when its stop returns).

A notification from a configured member becomes member_added; if the channel still had that member,
it becomes member_disappeared (as a graceful departure) first: static members keep their identity
across restarts, so what the stack knew of that member belongs to its previous run (a
BackupManager's map, for one, must give the sessions it held backups again). A shutdown
notification becomes member_disappeared.
``get_members`` is the static members plus those below.
"""
import logging

import gevent

from pycat.attrs import Attr
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
    start_wait = Attr(int, 2000, "ms the channel's start waits for the members to be checked and told "
                                 "(pycat's own)")

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
            announcing = [self.spawn(self._announce, member) for member in list(self.members)]
            # bounded: a member whose host does not answer is left to its greenlet
            gevent.joinall(announcing, timeout=max(0, self.start_wait) / 1000.0)

    def _pinged_from_above(self):
        node = self.previous
        while node is not None:
            if getattr(node, "pings_members", False):
                return True
            node = getattr(node, "previous", None)
        return False

    def _announce(self, member):
        self.member_added(member)
        # synchronous ACK: the peer's stack has taken us in when the send returns
        self._notify([member], MEMBER_START, ch.USE_ACK | ch.SYNCHRONIZED_ACK)

    def stop_services(self, flags=ch.DEFAULT):
        if flags & (ch.SND_TX | ch.MBR_RX) and self._announced:
            self._announced = False
            self.stop()
            # before the sender stops below us; acknowledged, so the peers dropped us when it returns
            self._notify(list(self.members), MEMBER_STOP, ch.USE_ACK | ch.SYNCHRONIZED_ACK)
        super().stop_services(flags)

    def _notify(self, members, data, options=0):
        local = self.get_local_member(False)
        if local is None or local.host is None:
            return
        msg = ChannelData.create(ch.BYTE_MESSAGE | options, local, data)
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
            # a START from a member the stack above still has: its previous run is gone (module doc)
            if data == MEMBER_STOP or self._known_above(member):
                gone = member.copy() if hasattr(member, "copy") else member
                gone.command = SHUTDOWN_PAYLOAD
                super().member_disappeared(gone)
            if data == MEMBER_START:
                super().member_added(member)
            return
        super().message_received(msg)

    def _known_above(self, member):
        channel = self.channel
        return channel is not None and channel.get_member(member) is not None

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
