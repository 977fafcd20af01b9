"""ChannelCoordinator: the tail of every interceptor stack (Tomcat's ChannelCoordinator).

It owns the three real components and starts/stops them by flag:
  SND_RX -> receiver (binds; its address/port become the local member's),
  SND_TX -> sender, MBR_RX -> membership listening, MBR_TX -> membership broadcasting.

Start-flag rules (Tomcat's internalStart/internalStop), for ``start_services(flags)`` and
``stop_services(flags)``: once every level is started, further starts are no-ops; a start whose
levels are all already started is an error ("Channel already started for level"); flags outside
DEFAULT are ignored; stop only stops what was started. As a Lifecycle the coordinator is STARTED
while any level runs: a plain ``start()`` starts every level, ``stop()`` stops those running.

Down the stack it sends: MULTICAST messages go to ``membership.broadcast``, everything else to the
sender (which raises ChannelError naming each faulty member). Up the stack it delivers what the
receiver and the membership service hand it, except a MULTICAST message the membership service
takes as its own (``membership_message``: static membership's announcements).
"""
import logging

import gevent.lock

from pycat.errors import ChannelError
from pycat.lifecycle import LifecycleState
from pycat.tribes import channel as ch
from pycat.tribes.group.interceptor import ChannelInterceptor

log = logging.getLogger(__name__)
_MULTICAST, _SND_TX = ch.MULTICAST, ch.SND_TX


class ChannelCoordinator(ChannelInterceptor):
    def __init__(self, receiver=None, sender=None, membership=None):
        super().__init__()
        self.receiver = receiver
        self.sender = sender
        self.membership = membership
        self.start_level = 0
        self._lock = gevent.lock.RLock()

    # -- component defaults (created lazily so importing never binds anything) --------------
    def ensure_components(self):
        if self.receiver is None:
            from pycat.tribes.transport.receiver import NioReceiver
            self.receiver = NioReceiver()
        if self.sender is None:
            from pycat.tribes.transport.sender import ReplicationTransmitter
            self.sender = ReplicationTransmitter()
        if self.membership is None:
            from pycat.tribes.membership.mcast import McastService
            self.membership = McastService()

    # -- start / stop by flag -----------------------------------------------------------------
    def start_services(self, flags=ch.DEFAULT):
        with self._lock:
            flags &= ch.DEFAULT
            if self.start_level == ch.DEFAULT or flags == 0:
                return
            if flags & self.start_level == flags:
                raise ChannelError("Channel already started for level: %d" % flags)
            self._start_levels(flags & ~self.start_level)
            if self.state is not LifecycleState.STARTED:
                self.start()          # the levels asked for run already; _start adds none

    def stop_services(self, flags=ch.DEFAULT):
        with self._lock:
            try:
                self._stop_levels(flags)
            finally:
                if self.start_level == 0 and self.state is LifecycleState.STARTED:
                    self.stop()

    def _start(self):
        with self._lock:
            if self.start_level == 0:     # a plain start(): every level, as Tomcat's start(DEFAULT)
                self._start_levels(ch.DEFAULT)

    def _stop(self):
        with self._lock:
            self._stop_levels(self.start_level)

    def _start_levels(self, todo):
        with self._lock:
            self.ensure_components()
            started = 0
            try:
                if todo & ch.SND_RX:
                    self.receiver.message_listener = self
                    self.receiver.start()
                    started |= ch.SND_RX
                    self._update_local_member()
                if todo & ch.SND_TX:
                    self.sender.start()
                    started |= ch.SND_TX
                levels = todo & (ch.MBR_RX | ch.MBR_TX)
                if levels:
                    self._update_local_member()
                    self.membership.membership_listener = self
                    self.membership.message_listener = self
                    # both levels in one call: McastService waits 2 x frequency per start
                    self.membership.start_services(levels)
                    started |= levels
            except Exception as exc:
                self.start_level |= started
                if isinstance(exc, ChannelError):
                    raise
                raise ChannelError("channel start failed for level %d: %s" % (todo, exc)) from exc
            self.start_level |= started

    def _stop_levels(self, flags):
        with self._lock:
            flags &= self.start_level
            if not flags:
                return
            errors = []
            # stop membership first so peers hear the graceful goodbye while the receiver still runs
            levels = flags & (ch.MBR_RX | ch.MBR_TX)
            if levels:
                self._try(errors, self.membership.stop_services, levels)
            if flags & ch.SND_RX:
                self._try(errors, self.receiver.stop)
            if flags & ch.SND_TX:
                self._try(errors, self.sender.stop)
            self.start_level &= ~flags
            if errors:
                raise ChannelError("channel stop failed: %s" % "; ".join(map(str, errors)))

    @staticmethod
    def _try(errors, func, *args):
        try:
            func(*args)
        except Exception as exc:
            log.exception("stopping %s failed", getattr(func, "__self__", func))
            errors.append(exc)

    def _update_local_member(self):
        r = self.receiver
        if r is None or self.membership is None:
            return
        if getattr(r, "bound_port", None):
            udp = getattr(r, "bound_udp_port", r.udp_port)
            self.membership.set_local_member_properties(r.advertised_host, r.bound_port, r.secure_port, udp)
        elif getattr(self.membership, "local_member", None) is None:
            # membership before the receiver (Tomcat allows it): advertise the configured address
            from pycat.tribes.transport.receiver import auto_address
            address = getattr(r, "address", "auto") or "auto"
            host = auto_address() if address.strip().lower() == "auto" else address.strip()
            self.membership.set_local_member_properties(host, r.port, r.secure_port, r.udp_port)

    # -- down ------------------------------------------------------------------------------
    def send_message(self, members, msg, payload):
        if msg.options & _MULTICAST:
            from pycat.tribes.io.framing import encode_frame
            self.membership.broadcast(encode_frame(msg.encode()))
            return
        if not self.start_level & _SND_TX:
            raise ChannelError("channel sender is not started", {m: "sender not started" for m in members})
        self.sender.send_message(msg, members)

    def heartbeat(self):
        for part in (self.sender, self.receiver, self.membership):
            beat = getattr(part, "heartbeat", None)
            if beat is not None:
                try:
                    beat()
                except Exception:
                    log.exception("heartbeat of %s failed", part)

    # -- up: called by the receiver and the membership service -----------------------------
    def message_received(self, msg):
        # a broadcast looped back from ourselves is not news (multicast loopback); membership
        # traffic (static membership's announcements come over TCP with MULTICAST) is the
        # service's own: only MULTICAST messages pay for asking
        if msg.options & _MULTICAST and self.membership is not None:
            local = self.membership.local_member
            if local is not None and msg.address == local:
                return
            own = getattr(self.membership, "membership_message", None)
            if own is not None and own(msg):
                return
        previous = self.previous
        if previous is not None:
            previous.message_received(msg)

    # -- membership view -------------------------------------------------------------------
    def has_members(self):
        return self.membership is not None and self.membership.has_members()

    def get_members(self):
        return list(self.membership.get_members()) if self.membership is not None else []

    def get_member(self, member):
        for m in self.get_members():
            if m == member:
                return m
        return None

    def get_local_member(self, inc_alive=False):
        if self.membership is None:
            return None
        getter = getattr(self.membership, "get_local_member", None)
        if getter is not None:
            return getter(inc_alive)
        return self.membership.local_member
