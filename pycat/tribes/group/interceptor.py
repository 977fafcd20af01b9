"""The interceptor chain contract (Tomcat's ChannelInterceptorBase), shaped like a valve.

The stack is a doubly linked list: GroupChannel -> I1 -> ... -> In -> ChannelCoordinator.
* ``send_message(members, msg, payload)`` goes DOWN (towards the coordinator and the sender);
* ``message_received(msg)`` goes UP (towards the channel and its listeners);
* ``member_added`` / ``member_disappeared`` go UP; ``heartbeat`` goes DOWN;
* ``start_services(flags)`` / ``stop_services(flags)`` go DOWN so the coordinator starts the
  real components (Tomcat's ``start(int svc)``); an interceptor acts on the flags that concern it
  on the way. ``start()`` / ``stop()`` are the Lifecycle's and mean the interceptor's own parts:
  one that owns greenlets starts itself when the flags it serves start;
* membership queries (``get_members`` ...) go DOWN, so an interceptor can filter the view.

``msg`` is a ChannelData (options, timestamp, unique_id, address, message bytes). ``payload`` is an
optional ErrorHandler for asynchronous sends. ``option_flag`` selects the messages an interceptor
acts on: 0 means all, otherwise only messages carrying every bit of the flag (``ok_to_process``).
"""
import logging

from pycat.attrs import Attr
from pycat.lifecycle import Lifecycle
from pycat import errors
from pycat.tribes import channel as ch

log = logging.getLogger(__name__)


class ChannelInterceptor(Lifecycle):
    """Base of every interceptor: forwards everything to its neighbours."""

    option_flag = Attr(int, 0, "only act on messages whose options hold all these bits (0 = every message)")

    #: True for an interceptor that keeps checking the members' liveness by sending to them
    #: (TcpPingInterceptor). StaticMembershipInterceptor looks above itself for one by this flag
    #: rather than by class, so that the two modules do not import each other.
    pings_members = False

    def __init__(self):
        super().__init__()
        self.next = None
        self.previous = None
        self.channel = None  # the GroupChannel at the head, set when the stack is built

    def ok_to_process(self, options):
        flag = self.option_flag
        return flag == 0 or (options & flag) == flag

    # -- down --------------------------------------------------------------------------------
    def send_message(self, members, msg, payload):
        if self.next is not None:
            self.next.send_message(members, msg, payload)

    def heartbeat(self):
        if self.next is not None:
            self.next.heartbeat()

    def start_services(self, flags=ch.DEFAULT):
        """Start the channel services named by flags (SND_RX, SND_TX, MBR_RX, MBR_TX) below here."""
        if self.next is not None:
            self.next.start_services(flags)

    def stop_services(self, flags=ch.DEFAULT):
        if self.next is not None:
            self.next.stop_services(flags)

    # -- up ----------------------------------------------------------------------------------
    def message_received(self, msg):
        if self.previous is not None:
            self.previous.message_received(msg)

    def member_added(self, member):
        if self.previous is not None:
            self.previous.member_added(member)

    def member_disappeared(self, member):
        if self.previous is not None:
            self.previous.member_disappeared(member)

    # -- membership view (down) --------------------------------------------------------------
    def has_members(self):
        return self.next.has_members() if self.next is not None else False

    def get_members(self):
        return self.next.get_members() if self.next is not None else []

    def get_member(self, member):
        return self.next.get_member(member) if self.next is not None else None

    def get_local_member(self, inc_alive=False):
        return self.next.get_local_member(inc_alive) if self.next is not None else None

    # -- helpers -----------------------------------------------------------------------------
    def find_below(self, cls):
        node = self.next
        while node is not None:
            if isinstance(node, cls):
                return node
            node = node.next
        return None

    def find_above(self, cls):
        node = self.previous
        while node is not None:
            if isinstance(node, cls):
                return node
            node = getattr(node, "previous", None)
        return None

    def __repr__(self):
        return "<%s flag=%d>" % (type(self).__name__, self.option_flag)


class MemberViewInterceptor(ChannelInterceptor):
    """An interceptor that answers membership queries from its own view, ``self._members``
    (member -> its latest copy), instead of asking below: the filters (DomainFilter,
    TcpFailureDetector) decide which members the layers above see."""

    def __init__(self):
        super().__init__()
        self._members = {}

    def has_members(self):
        return bool(self._members)

    def get_members(self):
        return list(self._members.values())

    def get_member(self, member):
        return self._members.get(member)


def raise_faulty(message, faulty):
    """Raise a ChannelError naming the faulty members (dict member -> reason)."""
    raise errors.ChannelError(message, faulty)
