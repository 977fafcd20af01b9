"""The entry table's decisions (pycat/tribes/tipis/map_state.py), without sockets: roles, round-robin
backup choice, what a vanished member leaves to do (Tomcat's memberDisappeared), new members."""
from pycat.tribes.member import Member
from pycat.tribes.tipis.map_state import (BACKUP, PRIMARY, PROXY, EntryTable, MapEntry, RoundRobin, member_rank,
                                          supersedes)

ME = Member("10.0.0.1", 4000, unique_id=b"m" * 16)
A = Member("10.0.0.2", 4000, unique_id=b"a" * 16)
B = Member("10.0.0.3", 4000, unique_id=b"b" * 16)
C = Member("10.0.0.4", 4000, unique_id=b"c" * 16)


def test_roles_are_exclusive():
    for role, flags in ((PRIMARY, (True, False, False)), (BACKUP, (False, True, False)),
                        (PROXY, (False, False, True))):
        e = MapEntry("k", None, A, (B,), role)
        assert (e.is_primary, e.is_backup, e.is_proxy) == flags
        assert e.is_active == (role != PROXY)
        assert repr(e).startswith("MapEntry('k', %s, v0" % role)


def test_round_robin_starts_one_further_each_time_and_wraps():
    rr = RoundRobin()
    members = [A, B, C]
    assert rr.order(members) == [A, B, C]
    assert rr.order(members) == [B, C, A]
    assert rr.order(members) == [C, A, B]
    assert rr.order(members) == [A, B, C]
    assert rr.order([]) == []
    assert rr.order([A, B]) == [B, A]   # the position survives the member list shrinking
    assert rr.order(iter([C])) == [C]


def test_put_then_messages_change_roles():
    t = EntryTable()
    e = t.put_primary("k", "v", ME)
    assert (e.is_primary, e.primary, e.backups, e.value) == (True, ME, (), "v")
    assert t.lacking_backup() == [e]
    # another node took it over: this node keeps only where it lives
    t.apply_proxy("k", A, (B,))
    assert (e.is_proxy, e.value, e.primary, e.backups) == (True, None, A, (B,))
    assert t.keys() == [] and t.keys(full=True) == ["k"] and t.size() == 0 and t.size(full=True) == 1
    # a state record never overrides what a message already made
    t.apply_backup("k", "v2", A, (ME,))
    t.apply_proxy("k", C, (B,), if_absent=True)
    assert (e.is_backup, e.value, e.primary) == (True, "v2", A)
    t.apply_proxy("new", C, (B,), if_absent=True)
    assert t.get("new").is_proxy
    assert sorted(t.keys()) == ["k"] and t.state_records() == [("k", A, (ME,), 0), ("new", C, (B,), 0)]


def test_update_nodes_and_stepping_down():
    t = EntryTable()
    assert t.update_nodes("unknown", A, (B,), ME) is None
    e = t.put_primary("k", "v", ME)
    e.backups = (A,)
    # a node that took the key over names this one as its backup: this node steps down
    t.update_nodes("k", A, (ME,), ME)
    assert (e.is_backup, e.primary, e.backups, e.value) == (True, A, (ME,), "v")
    # a proxy stays a proxy (it has no value to back anything up with)
    p = t.apply_proxy("p", A, (B,))
    t.update_nodes("p", C, (ME,), ME)
    assert p.is_proxy and p.primary == C


def test_member_gone_decisions():
    t = EntryTable()
    mine_backed_by_a = t.put_primary("mine-a", 1, ME)
    mine_backed_by_a.backups = (A,)
    mine_backed_by_b = t.put_primary("mine-b", 2, ME)
    mine_backed_by_b.backups = (B,)
    backup_of_a = t.apply_backup("backup-of-a", 3, A, (ME,))          # -> promoted here
    backup_of_b = t.apply_backup("backup-of-b", 4, B, (ME,))          # untouched
    proxy_a_b = t.apply_proxy("proxy-a-b", A, (B,))                   # primary := None, kept (B has it)
    proxy_b_a = t.apply_proxy("proxy-b-a", B, (A,))                   # kept: its primary B lives
    proxy_c_a = t.apply_proxy("proxy-c-a", C, (A,))
    proxy_c_a.primary = None                                          # C went earlier: orphan now
    stale = t.apply_backup("stale", 5, A, (C,))                       # its backup is not me: no promotion

    gone = t.member_gone(A, ME)

    assert gone.republish == [mine_backed_by_a] and mine_backed_by_a.backups == ()
    assert mine_backed_by_b.backups == (B,)
    assert gone.promoted == [backup_of_a]
    assert (backup_of_a.is_primary, backup_of_a.primary, backup_of_a.backups, backup_of_a.value) == (True, ME, (), 3)
    assert backup_of_b.is_backup and backup_of_b.primary == B
    assert proxy_a_b.is_proxy and proxy_a_b.primary is None and proxy_a_b.backups == (B,)
    assert proxy_b_a.primary == B and t.get("proxy-b-a") is proxy_b_a
    assert gone.orphans == ["proxy-c-a"] and t.get("proxy-c-a") is None
    assert stale.is_backup and stale.primary is None
    # nothing left to do a second time (a STOP after the channel's own member_disappeared)
    again = t.member_gone(A, ME)
    assert (again.republish, again.promoted, again.orphans) == ([], [], [])


def test_proxy_whose_primary_and_only_backup_both_were_the_lost_member_is_dropped():
    t = EntryTable()
    t.apply_proxy("k", A, (A,))
    t.apply_proxy("empty", A, ())
    assert sorted(t.member_gone(A, ME).orphans) == ["empty", "k"] and len(t) == 0


def test_new_member_gives_backups_to_primaries_lacking_one():
    t = EntryTable()
    lone = t.put_primary("lone", 1, ME)
    backed = t.put_primary("backed", 2, ME)
    backed.backups = (A,)
    t.apply_backup("theirs", 3, A, (ME,))
    assert t.lacking_backup() == [lone]


def test_versions_order_news_about_a_key():
    assert supersedes(0, A, None)                      # nothing known: anything is news
    e = MapEntry("k", None, A, (B,), PROXY, version=5)
    assert supersedes(6, C, e) and not supersedes(4, A, e)
    assert supersedes(5, A, e)                         # the same primary's later news (ACCESS, diffs)
    # two take-overs stamped alike: every node keeps the same one, the higher-ranked primary
    low, high = sorted([B, C], key=member_rank)
    e.primary = low
    assert supersedes(5, high, e)
    e.primary = high
    assert not supersedes(5, low, e)
    e.primary = None                                   # its primary left: any primary at that version
    assert supersedes(5, A, e) and not supersedes(5, None, e)
    assert member_rank(None) < member_rank(A)


def test_a_put_over_a_known_key_keeps_its_version_for_the_publication_to_raise():
    t = EntryTable()
    t.apply_proxy("k", A, (B,), version=9)
    e = t.put_primary("k", "v", ME)
    assert (e.version, e.is_primary) == (9, True)
    t.apply_backup("k", "w", A, (ME,), version=12)
    assert e.version == 12
    t.update_nodes("k", C, (ME,), ME, version=13)
    assert (e.version, e.primary) == (13, C)
    t.apply_proxy("k", A, (B,), 20, if_absent=True)
    assert e.version == 13                             # state transfer never overrides
