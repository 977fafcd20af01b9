"""TcpPingInterceptor: keep members verified over TCP (for static membership without multicast).

On each heartbeat (or every ``interval`` ms with ``useThread``): if a TcpFailureDetector sits
below, run its forced check; else send the 64-byte TCP_PING_DATA payload to the members (only the
static ones with ``staticOnly``). Received pings are swallowed.
"""
import logging

import gevent

from pycat.attrs import Attr
from pycat.errors import ChannelError
from pycat.tribes import channel as ch
from pycat.tribes.group.interceptor import ChannelInterceptor
from pycat.tribes.group.interceptors.static_membership import StaticMembershipInterceptor
from pycat.tribes.group.interceptors.tcp_failure_detector import TcpFailureDetector
from pycat.tribes.io.channel_data import ChannelData

log = logging.getLogger(__name__)

TCP_PING_DATA = bytes([
    79, 167, 115, 72, 121, 223, 67, 201, 159, 111, 137, 128, 161, 91, 7, 20, 125, 217, 82, 91, 235, 223,
    67, 154, 183, 126, 190, 143, 129, 103, 30, 182, 55, 21, 190, 135, 69, 33, 76, 168, 191, 10, 77, 19,
    83, 56, 21, 50, 85, 246, 148, 183, 58, 223, 33, 120, 145, 4, 125, 215, 114, 132, 192, 213])


class TcpPingInterceptor(ChannelInterceptor):
    interval = Attr(int, 1000, "ms between pings when useThread is true")
    use_thread = Attr(bool, False, "ping from an own greenlet instead of the channel heartbeat")
    static_only = Attr(bool, False, "ping only static members")

    pings_members = True

    def start_services(self, flags=ch.DEFAULT):
        super().start_services(flags)
        if flags & ch.SND_TX:
            self.start()            # pings need the sender

    def stop_services(self, flags=ch.DEFAULT):
        if flags & ch.SND_TX:
            self.stop()
        super().stop_services(flags)

    def _start(self):
        if self.use_thread:
            self.spawn(self._loop)

    def _loop(self):
        while True:
            gevent.sleep(max(self.interval, 10) / 1000.0)
            self.send_ping()

    def heartbeat(self):
        super().heartbeat()
        if not self.use_thread:
            self.send_ping()

    def send_ping(self):
        detector = self.find_below(TcpFailureDetector)
        if detector is not None:
            detector.check_members(True)
            return
        members = self.get_members()
        if self.static_only:
            static = self.find_below(StaticMembershipInterceptor)
            members = [m for m in members if static is not None and m in static.members]
        if not members:
            return
        msg = ChannelData.create(ch.BYTE_MESSAGE, self.get_local_member(False), TCP_PING_DATA)
        try:
            super().send_message(members, msg, None)
        except ChannelError as exc:
            log.debug("TCP ping failed: %s", exc)

    def message_received(self, msg):
        if msg.message == TCP_PING_DATA:
            return
        super().message_received(msg)
