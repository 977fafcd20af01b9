"""GroupChannel: the channel the cluster talks to (Tomcat's GroupChannel).

The channel is the head of the stack ``GroupChannel -> interceptors (document order) ->
ChannelCoordinator``. ``send`` wraps the message in a ChannelData (bytes travel as BYTE_MESSAGE,
any other value through our versioned codec, never pickle) and pushes it down; what comes up is
decoded and offered to each channel listener whose ``accept`` says yes. An RPC request nobody
consumed is answered with NoRpcChannelReply so the caller does not wait for its timeout.

server.xml attaches children with ``set_membership``, ``set_receiver``, ``set_sender`` and
``add_interceptor``. ``start_services(flags)`` / ``stop_services(flags)`` (Tomcat's
``start(int svc)`` / ``stop(int svc)``) follow Tomcat's start-flag rules (see coordinator.py)
and raise ChannelError. The channel is a Lifecycle, STARTED once any level runs, with a heartbeat
greenlet calling ``heartbeat()`` down the stack every ``heartbeatSleeptime`` ms; its plain
``start()`` starts every service (``Channel.DEFAULT``) and ``stop()`` stops all that run.
"""
import logging
import gevent

from pycat.attrs import Attr
from pycat.errors import ChannelError, ProtocolError
from pycat.lifecycle import LifecycleState
from pycat.tribes import channel as ch
from pycat.tribes.group.coordinator import ChannelCoordinator
from pycat.tribes.group.interceptor import ChannelInterceptor
from pycat.tribes.group import rpc
from pycat.tribes.io import codec
from pycat.tribes.io.channel_data import ChannelData
from pycat.tribes.limits import PeerLog

log = logging.getLogger(__name__)


def _probe_payloads():
    from pycat.tribes.group.interceptors.tcp_failure_detector import TCP_FAIL_DETECT
    from pycat.tribes.group.interceptors.tcp_ping import TCP_PING_DATA
    return frozenset((TCP_FAIL_DETECT, TCP_PING_DATA))


_PROBES = _probe_payloads()
_VIEW_QUERIES = ("has_members", "get_members", "get_member", "get_local_member")


def _describe(obj):
    """A short, safe description of a received value for a log line."""
    if isinstance(obj, (tuple, list)) and obj and isinstance(obj[0], str):
        return "%s %r..." % (type(obj).__name__, obj[0][:40])
    if isinstance(obj, rpc.RpcMessage):
        return "RPC reply for %r" % obj.rpc_id[:40]
    return type(obj).__name__


class GroupChannel(ChannelInterceptor):
    heartbeat_enabled = Attr(bool, True, "run the internal heartbeat", xml="heartbeat")
    heartbeat_sleeptime = Attr(int, 5000, "heartbeat period, ms")
    option_check = Attr(bool, False, "fail start when two interceptors' option flags overlap")
    jmx_enabled = Attr(bool, True, "accepted for compatibility; pycat has no JMX")
    jmx_domain = Attr(str, "ClusterChannel", "accepted for compatibility")
    jmx_prefix = Attr(str, "", "accepted for compatibility")
    name = Attr(str, None, "channel name (set by the cluster)")

    def __init__(self):
        super().__init__()
        self.coordinator = ChannelCoordinator()
        self.interceptors = []
        self.channel_listeners = []
        self.membership_listeners = []
        self._stack_built = False
        self.channel = self
        self._unclaimed_log = PeerLog(log)

    # -- configuration (digester parent methods) -------------------------------------------
    def set_membership(self, service):
        self.coordinator.membership = service

    def set_receiver(self, receiver):
        self.coordinator.receiver = receiver

    def set_sender(self, sender):
        self.coordinator.sender = sender

    def add_interceptor(self, interceptor):
        if self._stack_built:
            raise ChannelError("interceptors must be added before the channel starts")
        self.interceptors.append(interceptor)

    # like Tomcat's getters, these create the default component when none was configured
    @property
    def membership_service(self):
        self.coordinator.ensure_components()
        return self.coordinator.membership

    @property
    def receiver(self):
        self.coordinator.ensure_components()
        return self.coordinator.receiver

    @property
    def sender(self):
        self.coordinator.ensure_components()
        return self.coordinator.sender

    def add_channel_listener(self, listener):
        if listener not in self.channel_listeners:
            self.channel_listeners.append(listener)

    def remove_channel_listener(self, listener):
        if listener in self.channel_listeners:
            self.channel_listeners.remove(listener)

    def add_membership_listener(self, listener):
        if listener not in self.membership_listeners:
            self.membership_listeners.append(listener)

    def remove_membership_listener(self, listener):
        if listener in self.membership_listeners:
            self.membership_listeners.remove(listener)

    def iter_interceptors(self):
        node = self.next
        while node is not None and node is not self.coordinator:
            yield node
            node = node.next

    # -- the stack ----------------------------------------------------------------------------
    def _build_stack(self):
        if self._stack_built:
            return
        if not self.interceptors:
            from pycat.tribes.group.interceptors.message_dispatch import MessageDispatchInterceptor
            self.interceptors.append(MessageDispatchInterceptor())
        chain = [self] + self.interceptors + [self.coordinator]
        for upper, lower in zip(chain, chain[1:]):
            upper.next, lower.previous = lower, upper
        for node in chain:
            node.channel = self
        # each membership query goes straight to the first node that answers it itself: the
        # interceptors above it only pass it on (the cluster asks twice per message it sends)
        self._answering = {name: self._first_answering(name) for name in _VIEW_QUERIES}
        self._stack_built = True

    def _first_answering(self, name):
        passes_on = getattr(ChannelInterceptor, name)
        node = self.next
        while node is not self.coordinator:
            if getattr(type(node), name) is not passes_on or name in vars(node):
                return node
            node = node.next
        return node

    def _check_option_flags(self):
        seen = {}
        for icpt in self.interceptors:
            flag = icpt.option_flag
            if not flag:
                continue
            for other_flag, other in seen.items():
                if (flag & other_flag) == flag or (flag & other_flag) == other_flag:
                    raise ChannelError("Interceptor option flag conflict: %s[%d] and %s[%d]; "
                                       "No faulty members identified."
                                       % (type(other).__name__, other_flag, type(icpt).__name__, flag))
            seen[flag] = icpt

    # -- start / stop -------------------------------------------------------------------------
    def start_services(self, flags=ch.DEFAULT):
        flags &= ch.DEFAULT
        if not flags:
            return
        # the stack (and the coordinator's start-level rules, raising ChannelError) first, then
        # the Lifecycle start, which only adds the heartbeat once some service runs
        self._prepare_stack()
        self.next.start_services(flags)
        if self.state is not LifecycleState.STARTED:
            self.start()

    def stop_services(self, flags=ch.DEFAULT):
        if not self._stack_built:
            return
        try:
            self.next.stop_services(flags)
        finally:
            if self.coordinator.start_level == 0 and self.state is LifecycleState.STARTED:
                self.stop()

    def _prepare_stack(self):
        self._build_stack()
        if self.option_check:
            self._check_option_flags()

    def _start(self):
        if self.coordinator.start_level == 0:
            # a plain start(): every service, as Tomcat's start(Channel.DEFAULT)
            self._prepare_stack()
            self.next.start_services(ch.DEFAULT)
        if self.heartbeat_enabled:
            self.spawn(self._heartbeat_loop)

    def _stop(self):
        running = self.coordinator.start_level
        if self._stack_built and running:
            self.next.stop_services(running)

    def _heartbeat_loop(self):
        while True:
            gevent.sleep(max(self.heartbeat_sleeptime, 10) / 1000.0)
            try:
                self.heartbeat()
            except Exception:
                log.exception("channel heartbeat failed")

    def heartbeat(self):
        super().heartbeat()
        for listener in list(self.membership_listeners) + list(self.channel_listeners):
            beat = getattr(listener, "heartbeat", None)
            if beat is not None:
                try:
                    beat()
                except Exception:
                    log.exception("heartbeat of listener %r failed", listener)

    # -- sending ------------------------------------------------------------------------------
    def send(self, members, message, options=ch.SEND_OPTIONS_DEFAULT, handler=None):
        """Send message to members; returns the 16-byte unique id. Raises ChannelError."""
        if not members:
            raise ChannelError("No destination given")
        if type(options) is not int:
            options = ch.parse_send_options(options)
        if isinstance(message, (bytes, bytearray, memoryview)):
            options |= ch.BYTE_MESSAGE
            data = message if type(message) is bytes else bytes(message)
        else:
            options &= ~ch.BYTE_MESSAGE
            data = codec.dumps(rpc.to_wire(message))
        msg = ChannelData.create(options, self.get_local_member(False), data)
        self._build_stack()
        self.next.send_message(list(members), msg, handler)
        return msg.unique_id

    # -- receiving ----------------------------------------------------------------------------
    def message_received(self, msg):
        sender = msg.address
        if msg.options & ch.BYTE_MESSAGE:
            obj = msg.message
            if len(obj) == 64 and obj in _PROBES:
                return  # a liveness probe from a peer's TcpFailureDetector/TcpPingInterceptor, not data
        else:
            try:
                obj = rpc.from_wire(codec.loads(msg.message))
            except (ProtocolError, ValueError, TypeError, KeyError) as exc:
                log.warning("dropping undecodable message %s from %s: %s",
                            msg.unique_id.hex(), getattr(sender, "name", sender), exc)
                return
        delivered = False
        error = None
        for listener in list(self.channel_listeners):
            try:
                if listener.accept(obj, sender):
                    delivered = True
                    listener.message_received(obj, sender)
            except Exception as exc:  # one bad listener must not starve the others
                log.exception("channel listener %r failed on message from %s", listener,
                              getattr(sender, "name", sender))
                error = exc
        if not delivered:
            if isinstance(obj, rpc.RpcMessage) and not obj.reply:
                self._no_rpc_reply(obj, msg)
            else:
                # e.g. a map message for a map this node does not run: nobody here takes it
                self._unclaimed_log.log(logging.INFO, getattr(sender, "name", sender),
                                        "no listener took a message from %s (%s); dropped",
                                        getattr(sender, "name", sender), _describe(obj))
        if error is not None:
            # the receiver turns this into FAIL_ACK for a sync-ack send
            raise ChannelError("listener failed: %s" % error, {sender: error})

    def _no_rpc_reply(self, request, msg):
        reply = rpc.NoRpcChannelReply(request.rpc_id, request.uuid)
        try:
            self.send([msg.address], reply, msg.options & ~(ch.SYNCHRONIZED_ACK | ch.BYTE_MESSAGE))
        except ChannelError as exc:
            log.warning("could not send NoRpcChannelReply to %s: %s", msg.address, exc)

    def member_added(self, member):
        for listener in list(self.membership_listeners):
            try:
                listener.member_added(member)
            except Exception:
                log.exception("membership listener %r failed on member_added", listener)

    def member_disappeared(self, member):
        for listener in list(self.membership_listeners):
            try:
                listener.member_disappeared(member)
            except Exception:
                log.exception("membership listener %r failed on member_disappeared", listener)

    # -- membership view ----------------------------------------------------------------------
    def _top(self):
        # before the stack is built (configuration still running) ask the coordinator directly,
        # so a query never freezes the interceptor list
        return self.next if self._stack_built else self.coordinator

    def _view(self, name):
        return self._answering[name] if self._stack_built else self.coordinator

    def has_members(self):
        return self._view("has_members").has_members()

    def get_members(self):
        return self._view("get_members").get_members()

    def get_member(self, member):
        return self._view("get_member").get_member(member)

    def get_local_member(self, inc_alive=False):
        return self._view("get_local_member").get_local_member(inc_alive)
