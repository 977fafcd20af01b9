"""Channel API and GroupChannel over the in-memory network (no sockets)."""
import pytest

from pycat import attrs
from pycat.errors import ChannelError, ConfigError, LifecycleError
from pycat.tribes import channel as ch
from pycat.tribes.group.interceptor import ChannelInterceptor
from pycat.tribes.group.interceptors.message_dispatch import MessageDispatchInterceptor
from pycat.tribes.transport.sender import RemoteProcessError

from _channel_fakes import Collect, FakeNetwork, MemberWatch, wait_for


# -- send options (TestChannelConfig) ---------------------------------------------------------
@pytest.mark.parametrize("text, value", [
    (8, 8), ("8", 8), ("6", 6), ("async", 8), ("asynchronous", 8), ("use_ack,sync", 6),
    ("use_ack, synchronized_ack", 6), ("async, multicast", 72), ("multicast", 64), (72, 72),
    ("byte", 1), ("byte_message", 1), ("udp", 32), ("secure", 16), ("", 0), ("0x100", 256),
])
def test_parse_send_options(text, value):
    assert ch.parse_send_options(text) == value


def test_unknown_option_name_is_a_config_error():
    with pytest.raises(ConfigError, match="bogus"):
        ch.parse_send_options("async, bogus")


def test_options_to_string_high_to_low_like_tomcat():
    assert ch.options_to_string(72) == "multicast, async"
    assert ch.options_to_string(6) == "sync, use_ack"
    assert ch.options_to_string(127) == "multicast, udp, secure, async, sync, use_ack, byte"
    assert ch.options_to_string(0) == ""


def test_start_flags():
    assert (ch.SND_RX, ch.SND_TX, ch.MBR_RX, ch.MBR_TX, ch.DEFAULT) == (1, 2, 4, 8, 15)


# -- start / stop rules (TestGroupChannelStartStop) -------------------------------------------
def test_start_default_twice_is_fine():
    c = FakeNetwork().channel()
    c.start_services(ch.DEFAULT)
    c.start_services(ch.DEFAULT)
    assert c.coordinator.start_level == 15
    c.stop_services(ch.DEFAULT)
    assert c.coordinator.start_level == 0
    assert c.state.value == "STOPPED"


@pytest.mark.parametrize("first, level", [(None, ch.SND_RX), (ch.SND_RX, ch.MBR_RX),
                                          (ch.SND_RX, ch.MBR_TX), (None, ch.SND_TX)])
def test_starting_a_partial_level_twice_fails(first, level):
    c = FakeNetwork().channel()
    if first:
        c.start_services(first)
    c.start_services(level)
    with pytest.raises(ChannelError, match="already started"):
        c.start_services(level)
    c.stop()


def test_flags_outside_default_are_a_no_op():
    c = FakeNetwork().channel()
    c.start_services(0xFFF0)
    c.start_services(0xFFF0)
    assert c.coordinator.start_level == 0
    assert c.state.value != "STARTED"


def test_stop_only_stops_what_was_started():
    c = FakeNetwork().channel()
    c.start_services(ch.SND_RX | ch.SND_TX)
    c.stop_services(ch.MBR_TX)  # never started: nothing happens
    assert c.coordinator.start_level == 3
    c.stop_services(ch.SND_RX)
    assert c.coordinator.start_level == ch.SND_TX
    assert c.state.value == "STARTED"
    c.stop()
    assert c.state.value == "STOPPED"


# -- start() is the Lifecycle's; the flags have their own names -----------------------------------
def test_plain_start_and_stop_are_the_lifecycle_over_every_service():
    c = FakeNetwork().channel()
    events = []
    c.add_lifecycle_listener(lambda e: events.append((e.type, c.coordinator.start_level)))
    c.start()
    assert c.state.value == "STARTED" and c.coordinator.state.value == "STARTED"
    assert c.coordinator.start_level == ch.DEFAULT
    # the ``start`` event comes once every service runs
    assert events == [("before_init", 0), ("after_init", 0), ("before_start", 0), ("start", ch.DEFAULT),
                      ("after_start", ch.DEFAULT)]
    dispatcher = next(c.iter_interceptors())
    workers = list(dispatcher.greenlets)
    assert dispatcher.state.value == "STARTED" and workers
    c.stop()
    assert c.coordinator.start_level == 0 and c.state.value == "STOPPED"
    assert c.coordinator.state.value == "STOPPED" and dispatcher.state.value == "STOPPED"
    assert all(g.dead for g in workers)
    # and again: a stopped channel starts every service anew
    c.start()
    assert c.coordinator.start_level == ch.DEFAULT
    c.stop()


def test_start_services_then_the_lifecycle_stop_stops_what_runs():
    c = FakeNetwork().channel()
    c.start_services(ch.SND_RX)
    assert c.state.value == "STARTED" and c.coordinator.start_level == ch.SND_RX
    c.start()                           # STARTED already: the Lifecycle start adds nothing
    assert c.coordinator.start_level == ch.SND_RX
    c.stop()
    assert c.coordinator.start_level == 0 and c.state.value == "STOPPED"


def test_an_interceptor_that_owns_greenlets_runs_them_while_the_sender_runs():
    dispatcher = MessageDispatchInterceptor()
    dispatcher.max_threads = 3
    c = FakeNetwork().channel(dispatcher)
    c.start_services(ch.SND_RX | ch.MBR_RX | ch.MBR_TX)
    assert dispatcher.state.value == "NEW" and not list(dispatcher.greenlets)   # no sender yet
    c.start_services(ch.SND_TX)
    workers = list(dispatcher.greenlets)
    assert dispatcher.state.value == "STARTED" and len(workers) == 3 and dispatcher.running
    c.stop_services(ch.SND_TX)
    assert dispatcher.state.value == "STOPPED" and all(g.dead for g in workers) and not dispatcher.running
    assert c.state.value == "STARTED"       # the other services still run
    c.stop()


# -- option flag conflicts (TestGroupChannelOptionFlag) ----------------------------------------
def _flagged(flag):
    i = ChannelInterceptor()
    i.option_flag = flag
    return i


def test_option_check_conflict():
    c = FakeNetwork().channel(_flagged(128), _flagged(128))
    c.option_check = True
    with pytest.raises(ChannelError, match="option flag conflict.*No faulty members identified"):
        c.start_services(ch.DEFAULT)
    # the Lifecycle start refuses the same way, as one LifecycleError caused by it, and ends stopped
    with pytest.raises(LifecycleError, match="option flag conflict") as info:
        c.start()
    assert isinstance(info.value.__cause__, ChannelError)
    assert c.state.value == "STOPPED" and c.coordinator.start_level == 0


def test_option_check_distinct_flags_start():
    c = FakeNetwork().channel(_flagged(128), _flagged(64), _flagged(256))
    c.option_check = True
    c.start()
    c.stop()


def test_default_stack_is_message_dispatch():
    c = FakeNetwork().channel()
    c.start()
    assert [type(i) for i in c.iter_interceptors()] == [MessageDispatchInterceptor]
    c.stop()


def test_attributes_use_tomcat_names():
    c = FakeNetwork().channel()
    assert attrs.set_property(c, "heartbeatSleeptime", "100")
    assert attrs.set_property(c, "optionCheck", "true")
    assert attrs.set_property(c, "heartbeat", "false")
    assert (c.heartbeat_sleeptime, c.option_check, c.heartbeat_enabled) == (100, True, False)


# -- messages ------------------------------------------------------------------------------
@pytest.fixture
def pair():
    net = FakeNetwork()
    a, b = net.channel(), net.channel()
    la, lb = Collect(), Collect()
    a.add_channel_listener(la)
    b.add_channel_listener(lb)
    wa, wb = MemberWatch(), MemberWatch()
    a.add_membership_listener(wa)
    b.add_membership_listener(wb)
    a.start()
    b.start()
    yield net, a, b, la, lb, wa, wb
    a.stop()
    b.stop()


def test_members_see_each_other(pair):
    net, a, b, la, lb, wa, wb = pair
    assert wa.members == [b.get_local_member()]
    assert wb.members == [a.get_local_member()]
    assert a.has_members() and a.get_members() == [b.get_local_member()]


@pytest.mark.parametrize("options", [0, 2, 6, 8, "use_ack,sync", "async"])
def test_bytes_and_values_round_trip(pair, options):
    net, a, b, la, lb, wa, wb = pair
    uid = a.send(a.get_members(), b"raw bytes", options)
    assert len(uid) == 16
    a.send(a.get_members(), {"k": [1, 2.5, "x", b"y", None, True]}, options)
    wait_for(lambda: len(lb.got) == 2)
    assert lb.messages == [b"raw bytes", {"k": [1, 2.5, "x", b"y", None, True]}]
    assert lb.got[0][1] == a.get_local_member()
    sent_options = [m.options for _, m in net.sent]
    assert sent_options[0] & ch.BYTE_MESSAGE and not sent_options[1] & ch.BYTE_MESSAGE


def test_sync_ack_listener_error_names_the_member(pair):
    net, a, b, la, lb, wa, wb = pair
    lb.fail = lambda m: m == b"bad"
    with pytest.raises(ChannelError) as info:
        a.send(a.get_members(), b"bad", 6)
    (member, reason), = info.value.faulty.items()
    assert member == b.get_local_member()
    assert isinstance(reason, RemoteProcessError)
    a.send(a.get_members(), b"bad", 2)  # no sync ack: the sender never hears of it
    a.send(a.get_members(), b"good", 6)
    assert lb.messages == [b"good"]


def test_no_destination(pair):
    with pytest.raises(ChannelError, match="No destination"):
        pair[1].send([], b"x")


def test_accept_filters_listeners(pair):
    net, a, b, la, lb, wa, wb = pair

    class OnlyInts(Collect):
        def accept(self, msg, sender):
            return isinstance(msg, int)
    ints = OnlyInts()
    b.add_channel_listener(ints)
    a.send(a.get_members(), 5, 0)
    a.send(a.get_members(), b"x", 0)
    assert ints.messages == [5]
    assert lb.messages == [5, b"x"]


def test_graceful_leave_is_seen(pair):
    net, a, b, la, lb, wa, wb = pair
    b.stop()
    assert wa.members == []
    assert wa.gone[0].is_shutdown


def test_heartbeat_goes_down_the_stack_and_to_listeners():
    beats = []

    class Beat(ChannelInterceptor):
        def heartbeat(self):
            beats.append("icpt")
            super().heartbeat()

    class L(MemberWatch):
        def heartbeat(self):
            beats.append("listener")
    c = FakeNetwork().channel(Beat())
    c.add_membership_listener(L())
    c.heartbeat_enabled = True
    c.heartbeat_sleeptime = 20
    c.start()
    wait_for(lambda: beats.count("icpt") >= 2)
    c.stop()
    assert "listener" in beats


def test_default_components_like_tomcat():
    from pycat.tribes.group.group_channel import GroupChannel
    from pycat.tribes.membership.mcast import McastService
    from pycat.tribes.transport.receiver import NioReceiver
    from pycat.tribes.transport.sender import ReplicationTransmitter
    c = GroupChannel()
    assert isinstance(c.membership_service, McastService)
    assert isinstance(c.receiver, NioReceiver) and c.receiver.port == 4000
    assert isinstance(c.sender, ReplicationTransmitter)
