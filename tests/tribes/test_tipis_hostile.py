"""A replicated map facing bad input and a failing start: malformed, foreign-map and unknown-key messages
are dropped (and logged with their sender) without raising or FAIL_ACKing, and the map keeps working."""
import logging

import pytest

from pycat.errors import ChannelError
from pycat.tribes.group import rpc
from pycat.tribes.tipis import map_message as mm
from pycat.tribes.tipis.map_message import MapMessage

from test_tipis_map import MAP, assert_two_copies, make_nodes, shutdown

pytestmark = pytest.mark.timeout(120)
MAP_ID = MAP.encode("iso-8859-1")
LOGGER = "pycat.tribes.tipis.lazy_replicated_map"


class Answers:
    def reply_request(self, msg, sender):
        return None


@pytest.mark.parametrize("real", [True, False], ids=["tcp", "memory"])
def test_bad_messages_are_dropped_and_logged_and_the_map_keeps_working(real, caplog):
    _, nodes = make_nodes(4, real, start_maps=False)
    try:
        mapped, attacker = nodes[:3], nodes[3]    # the attacker runs no map: it sends raw values
        for node in mapped:
            node.start_map()
        target = mapped[0]
        mapped[1].map.put("k", {"v": 1})
        held_before = target.map.size(full=True)
        dest = [target.local]
        me = attacker.local
        good = MapMessage(MAP_ID, mm.BACKUP, "x", {"v": 9}, False, me, (target.local,)).to_plain()
        caplog.set_level(logging.WARNING, LOGGER)
        bad = [
            good[:4],                                               # too short
            good[:3] + (99,) + good[4:],                            # unknown type
            good[:4] + (2.5,) + good[5:],                           # key of a wrong type
            good[:7] + (("not", "a", "member"),) + good[8:],        # primary that is no member
            MapMessage(MAP_ID, mm.INIT, primary=me).to_plain(),     # an RPC-only type sent plain
            MapMessage(MAP_ID, mm.BACKUP, "unknown", {"d": 1}, True, me, (target.local,)).to_plain(),  # diff, no copy
            MapMessage(MAP_ID, mm.BACKUP, "y", "not a dict", False, me, (target.local,)).to_plain(),  # owner refuses
        ]
        for plain in bad:
            attacker.chan.send(dest, plain, 6)          # sync ack: no FAIL_ACK comes back
        assert target.map.dropped == len(bad)
        assert target.map.entry("unknown") is None and target.map.entry("y") is None
        assert target.map.size(full=True) == held_before
        # the first drop is logged with the sender; the repeats are rate-limited
        warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
        assert any(me.name in w and "malformed map message" in w for w in warnings), warnings
        assert len([w for w in warnings if "dropped a message" in w]) == 1

        # news older than what is held is ignored (counted as stale, not as dropped)
        held = target.map.entry("k")
        old_news = MapMessage(MAP_ID, mm.PROXY, "k", None, False, me, (target.local,), version=held.version - 1)
        attacker.chan.send(dest, old_news.to_plain(), 6)
        assert target.map.stale == 1 and target.map.entry("k") is held and held.primary != me
        assert target.map.dropped == len(bad)

        # another map's messages are not even accepted
        foreign = MapMessage(b"other-map", mm.BACKUP, "f", {"v": 1}, False, me, (target.local,)).to_plain()
        attacker.chan.send(dest, foreign, 6)
        assert target.map.entry("f") is None and target.map.dropped == len(bad)

        # RPCs: an unknown key gets the empty reply; a malformed or unanswerable request too
        caller = rpc.RpcChannel(MAP_ID, attacker.chan, Answers())
        for request in (MapMessage(MAP_ID, mm.RETRIEVE_BACKUP, "no-such-key").to_plain(),
                        ("__pycat_map__", 1, MAP_ID, "garbage"),
                        MapMessage(MAP_ID, mm.REMOVE, "k").to_plain()):
            replies = caller.send(dest, request, rpc.FIRST_REPLY, 2, 5000)
            assert [r.message for r in replies] == [None]
        assert target.map.dropped == len(bad) + 2
        assert target.map.entry("k") is not None          # the REMOVE sent as an RPC did nothing
        # a retrieval of a known key does answer (the control for the empty replies)
        backup = next(n for n in mapped if n.map.entry("k").is_backup)
        replies = caller.send([backup.local], MapMessage(MAP_ID, mm.RETRIEVE_BACKUP, "k").to_plain(),
                              rpc.FIRST_REPLY, 2, 5000)
        assert MapMessage.from_plain(replies[0].message).value == {"v": 1}
        caller.breakdown()

        # a version at the top of the range saturates the clock instead of breaking the encoding
        top = MapMessage(MAP_ID, mm.PROXY, "top", None, False, me, (), version=mm.MAX_VERSION)
        attacker.chan.send(dest, top.to_plain(), 6)
        target.map.put("after-top", {"v": 4})
        assert target.map.entry("after-top").version == mm.MAX_VERSION
        assert_two_copies(mapped, "after-top", {"v": 4})

        # the map still works, and nothing the attacker sent made it a map member
        assert target.map.get("k") == {"v": 1}
        assert_two_copies(mapped, "k", {"v": 1})
        target.map.put("z", {"v": 3})
        assert_two_copies(mapped, "z", {"v": 3})
        assert all(me not in n.map.map_members() for n in mapped)
    finally:
        shutdown(nodes)


def test_start_failure_raises_only_with_terminate_on_start_failure(caplog):
    _, nodes = make_nodes(2, start_maps=False)
    try:
        starting, unreachable = nodes
        unreachable.chan.coordinator.receiver.stop()     # a channel member every send to fails
        with pytest.raises(ChannelError):
            starting.start_map(terminate_on_start_failure=True)
        assert starting.map.state == mm.DESTROYED
        assert starting.map not in starting.chan.channel_listeners
        caplog.set_level(logging.WARNING, LOGGER)
        m = starting.start_map()                            # default: warn and go on
        assert m.state == mm.INITIALIZED and m.map_members() == ()
        assert any("joins them through pings" in r.getMessage() for r in caplog.records)
        assert m.put("k", {"v": 1}) == ()                   # works alone
        assert m.get("k") == {"v": 1}
    finally:
        shutdown(nodes)


def test_one_dead_channel_member_does_not_fail_a_start():
    _, nodes = make_nodes(3, start_maps=False)
    try:
        first, dead, joiner = nodes
        first.start_map()
        first.map.put("k", {"v": 1})
        dead.chan.coordinator.receiver.stop()
        joiner.start_map(terminate_on_start_failure=True)   # INIT is asked again of the others
        assert joiner.map.map_members() == (first.local,)
        # first's key had no backup (its only other map member was none): now the joiner has it
        assert joiner.map.entry("k").is_backup and first.map.entry("k").backups == (joiner.local,)
        assert joiner.map.get("k") == {"v": 1} and joiner.map.entry("k").is_primary
    finally:
        shutdown(nodes)
