"""The pure member table, driven by a fake clock."""
from pycat.tribes.member import Member
from pycat.tribes.membership.membership import Membership


class FakeClock:
    def __init__(self, now=10_000):
        self.now = now

    def __call__(self):
        return self.now


def _member(port, alive=0, **kw):
    return Member("127.0.0.1", port, unique_id=bytes([port % 256]) * 16, alive_time=alive, **kw)


def test_new_then_known_and_local_ignored():
    local = _member(4000)
    table = Membership(local, clock=FakeClock())
    assert not table.member_alive(local) and not table.has_members()
    assert table.member_alive(_member(4001))
    assert not table.member_alive(_member(4001))
    assert table.has_members() and len(table) == 1


def test_known_member_fields_are_updated_in_place():
    table = Membership(clock=FakeClock())
    first = _member(4001, alive=5, payload=b"a")
    table.member_alive(first)
    table.member_alive(_member(4001, alive=505, payload=b"b", domain=b"d"))
    assert table.get_member(_member(4001)) is first
    assert (first.alive_time, first.payload, first.domain) == (505, b"b", b"d")


def test_members_sorted_longest_running_first():
    table = Membership(clock=FakeClock())
    for port, alive in ((4001, 100), (4002, 9000), (4003, 50)):
        table.member_alive(_member(port, alive))
    assert [m.port for m in table.members()] == [4002, 4001, 4003]
    table.member_alive(_member(4003, 20000))  # a re-heard member whose alive time passed the others
    assert [m.port for m in table.members()] == [4003, 4002, 4001]
    table.members().clear()  # callers get copies
    assert len(table.members()) == 3


def test_expiry_with_a_fake_clock():
    clock = FakeClock()
    table = Membership(clock=clock)
    table.member_alive(_member(4001))
    clock.now += 1000
    table.member_alive(_member(4002))
    clock.now += 2000
    assert table.expire(clock.now, 3000) == []  # 4001 silent exactly 3000 ms: not more than dropTime
    clock.now += 1
    assert [m.port for m in table.expire(clock.now, 3000)] == [4001]
    table.member_alive(_member(4002))  # heard again: the clock restarts for it
    clock.now += 2999
    assert table.expire(None, 3000) == []
    clock.now += 2
    assert [m.port for m in table.expire(clock.now, 3000)] == [4002]
    assert not table.has_members()


def test_remove_get_find_clear():
    table = Membership(clock=FakeClock())
    m = _member(4001)
    table.member_alive(m)
    assert table.find(port=4001) is m and table.find(port=1) is None
    assert table.find(host=m.host, unique_id=m.unique_id) is m
    assert table.last_heard(m) == 10_000 and m in table
    assert table.remove(_member(4001)) is m
    assert table.remove(m) is None and table.get_member(m) is None
    table.member_alive(m)
    assert table.clear() == [m] and len(table) == 0


def test_table_is_bounded_but_known_members_stay_fresh():
    clock = FakeClock()
    table = Membership(clock=clock, max_members=3)
    assert [table.member_alive(_member(p)) for p in (4001, 4002, 4003)] == [True, True, True]
    assert table.member_alive(_member(4004)) is None and table.refused == 1
    assert 4004 not in [m.port for m in table.members()] and len(table) == 3
    clock.now += 500
    assert table.member_alive(_member(4001)) is False  # a known member is still refreshed when full
    assert table.last_heard(_member(4001)) == clock.now
    table.remove(_member(4002))
    assert table.member_alive(_member(4004)) is True  # room again
    assert Membership(clock=clock).member_alive(_member(4009)) is True  # no bound by default
