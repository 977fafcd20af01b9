"""In-memory receiver, sender and membership for pure channel/interceptor tests (no sockets).

A FakeNetwork connects channels: the sender encodes each ChannelData to its wire bytes and the
receiving side decodes them again (so the wire formats are exercised), then delivers with
Tomcat's ack semantics: a listener error under USE_ACK|SYNCHRONIZED_ACK comes back as
RemoteProcessError for that member. Memberships see each other while both run MBR_RX and MBR_TX;
``crash`` removes a node without the graceful notice.
"""
import itertools

from waiting import wait_for  # noqa: F401 - the tribes tests import it from here

from pycat.errors import ChannelError
from pycat.tribes import channel as ch
from pycat.tribes.group.group_channel import GroupChannel
from pycat.tribes.io.channel_data import ChannelData
from pycat.tribes.member import Member, SHUTDOWN_PAYLOAD
from pycat.tribes.transport.sender import RemoteProcessError

_ports = itertools.count(20000)


class FakeNetwork:
    def __init__(self):
        self.receivers = {}     # (host, port) -> FakeReceiver
        self.memberships = []
        self.sent = []          # (member, ChannelData) as delivered, for inspection

    def channel(self, *interceptors, domain=b""):
        c = GroupChannel()
        c.heartbeat_enabled = False
        c.set_receiver(FakeReceiver(self))
        c.set_sender(FakeSender(self))
        c.set_membership(FakeMembership(self, domain))
        for i in interceptors:
            c.add_interceptor(i)
        return c

    # membership visibility
    def announce(self, m):
        for other in self.memberships:
            if other is not m and other.rx and m.tx and m.local_member is not None:
                other.seen(m.local_member)
            if other is not m and m.rx and other.tx and other.local_member is not None:
                m.seen(other.local_member)

    def leave(self, m, graceful=True):
        gone = m.local_member.copy()
        if graceful:
            gone.command = SHUTDOWN_PAYLOAD
        for other in self.memberships:
            if other is not m:
                other.lost(gone)


class FakeReceiver:
    def __init__(self, net):
        self.net = net
        self.message_listener = None
        self.advertised_host = "127.0.0.1"
        self.bound_port = None
        self.secure_port = self.udp_port = -1
        self.port = next(_ports)

    def start(self):
        self.bound_port = self.port
        self.net.receivers[("127.0.0.1", self.port)] = self

    def stop(self):
        self.net.receivers.pop(("127.0.0.1", self.port), None)
        self.bound_port = None

    def deliver(self, frame_body):
        msg = ChannelData.decode(frame_body)
        self.message_listener.message_received(msg)


class FakeSender:
    def __init__(self, net):
        self.net = net
        self.running = False

    def start(self):
        self.running = True

    def stop(self):
        self.running = False

    def send_message(self, msg, members):
        body = msg.encode()
        faulty = {}
        for member in members:
            receiver = self.net.receivers.get((member.hostname, member.port))
            if receiver is None:
                faulty[member] = ConnectionRefusedError("no receiver at %s" % member.name)
                continue
            self.net.sent.append((member, msg))
            try:
                receiver.deliver(body)
            except Exception as exc:
                if msg.options & ch.USE_ACK and msg.options & ch.SYNCHRONIZED_ACK:
                    faulty[member] = RemoteProcessError("FAIL_ACK: %s" % exc)
        if faulty:
            raise ChannelError("send failed", faulty)


class FakeMembership:
    def __init__(self, net, domain=b""):
        self.net = net
        self.domain = domain
        self.local_member = None
        self.membership_listener = None
        self.message_listener = None
        self.members = {}
        self.rx = self.tx = False
        net.memberships.append(self)

    def set_local_member_properties(self, host, port, secure_port=-1, udp_port=-1):
        if self.local_member is None:
            self.local_member = Member.local(host, port, secure_port, udp_port, domain=self.domain)
        else:
            self.local_member.host, self.local_member.port = host, port

    def get_local_member(self, inc_alive=False):
        return self.local_member

    def start_services(self, level):
        if level & ch.MBR_RX:
            self.rx = True
        if level & ch.MBR_TX:
            self.tx = True
        self.net.announce(self)

    def stop_services(self, level):
        if level & ch.MBR_TX and self.tx:
            self.tx = False
            self.net.leave(self, graceful=True)
        if level & ch.MBR_RX:
            self.rx = False
            self.members.clear()

    def crash(self):
        """Stop heartbeating without the graceful notice (peers drop us as after dropTime)."""
        self.tx = False
        self.net.leave(self, graceful=False)

    def seen(self, member):
        if member not in self.members:
            self.members[member] = member
            self.membership_listener.member_added(member)

    def lost(self, member):
        if self.members.pop(member, None) is not None:
            self.membership_listener.member_disappeared(member)

    def get_members(self):
        return list(self.members.values())

    def has_members(self):
        return bool(self.members)

    def broadcast(self, frame):
        pass


class Collect:
    """A channel listener that records (message, sender); optionally raises for some messages."""

    def __init__(self, fail=None):
        self.got = []
        self.fail = fail

    def accept(self, msg, sender):
        return True

    def message_received(self, msg, sender):
        if self.fail is not None and self.fail(msg):
            raise ValueError("listener refused %r" % (msg,))
        self.got.append((msg, sender))

    @property
    def messages(self):
        return [m for m, _ in self.got]


class MemberWatch:
    def __init__(self):
        self.members = []
        self.added = []
        self.gone = []

    def member_added(self, m):
        self.added.append(m)
        if m not in self.members:
            self.members.append(m)

    def member_disappeared(self, m):
        self.gone.append(m)
        if m in self.members:
            self.members.remove(m)




def real_channel(net, *interceptors, domain=b"", **receiver_attrs):
    """A channel with the real NioReceiver and PooledParallelSender on 127.0.0.1 and the fake
    membership (membership is not what these tests are about)."""
    from pycat.tribes.transport.receiver import NioReceiver
    from pycat.tribes.transport.sender import ReplicationTransmitter
    c = GroupChannel()
    c.heartbeat_enabled = False
    r = NioReceiver()
    r.address = "127.0.0.1"
    r.port = 0
    for k, v in receiver_attrs.items():
        setattr(r, k, v)
    c.set_receiver(r)
    c.set_sender(ReplicationTransmitter())
    c.set_membership(FakeMembership(net, domain))
    for i in interceptors:
        c.add_interceptor(i)
    return c
