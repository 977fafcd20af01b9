"""LazyReplicatedMap joining when the channel's view and the maps' disagree for a while (in-memory
channels, membership driven by hand): a map that started before its channel knew any member learns
the existing keys from the first map member it meets, and a map's START that overtakes the channel's
member_added still makes the sender a map member once the channel has it."""
import pytest

from pycat.tribes.tipis import map_message as mm

from test_tipis_map import Node, assert_two_copies, put_spread, shutdown
from _channel_fakes import FakeNetwork, wait_for

pytestmark = pytest.mark.timeout(60)


def test_a_map_started_before_its_channel_knew_anyone_learns_the_existing_keys():
    net = FakeNetwork()
    first, second, late = nodes = [Node(net, False, "n%d" % i) for i in range(3)]
    try:
        for node in (first, second):
            node.chan.start()
            node.start_map()
        values = put_spread([first, second], 4)          # every key has its primary and its backup
        late.start_map()                                  # its channel is not even started: no members
        assert late.map.map_members() == () and late.map.size(full=True) == 0
        late.chan.start()                                 # now the channel has the others
        wait_for(lambda: len(late.chan.get_members()) == 2, what="the late channel to see the others")
        assert late.map.size(full=True) == 0              # a channel member is not yet a map member
        late.map.heartbeat()                              # its first ping meets the map members ...
        assert sorted(late.map.map_members(), key=lambda m: m.port) == sorted(
            (first.local, second.local), key=lambda m: m.port)
        # ... and it asks one of them for the keys, which it had nobody to ask at start
        assert sorted(late.map.keys(full=True)) == sorted(values)
        for key in values:
            assert late.map.entry(key).is_proxy
        assert late.map.get("sid-00") == values["sid-00"]
        assert_two_copies(nodes, "sid-00", values["sid-00"])
    finally:
        shutdown(nodes)


def test_a_start_that_overtakes_the_channel_member_added_still_counts():
    net = FakeNetwork()
    a, b = nodes = [Node(net, False, "n%d" % i) for i in range(2)]
    try:
        for node in nodes:
            node.chan.start()
            node.start_map()
        assert b.local in a.map.map_members()
        a_membership = a.chan.coordinator.membership
        a_membership.lost(b.local)                   # a's channel forgets b (a restart, say) ...
        assert b.local not in a.map.map_members()
        start = mm.MapMessage(b.map.map_id, mm.START, primary=b.local).to_plain()
        assert a.map.reply_request(start, b.local) is not None   # ... and b's map says START first
        assert b.local not in a.map.map_members()    # not a channel member here: not a map member yet
        a_membership.seen(b.local)                   # the channel's member_added comes
        assert b.local in a.map.map_members()
        # a member_added alone (no START heard before it) makes no map member
        a_membership.lost(b.local)
        a_membership.seen(b.local)
        assert b.local not in a.map.map_members()
        a.map.heartbeat()                            # its ping does
        assert b.local in a.map.map_members()
    finally:
        shutdown(nodes)
