"""The Lifecycle state machine, exhaustively: every (state, operation) pair, every edge of
TRANSITIONS, every way into FAILED, and the event order Tomcat's LifecycleBase/ContainerBase use.

The expected tables below are written out by hand from Tomcat's behaviour (and pycat's documented
choices), not derived from the code under test. A probe component records its hooks and the
events its listeners see in one list, so the order between them is checked too.
"""
import itertools

import gevent
import pytest

from pycat.errors import LifecycleError
from pycat.lifecycle import EVENTS, TRANSITIONS, Lifecycle, LifecycleState as S

OPS = ("init", "start", "stop", "destroy")
RAISE = "raises"
NOOP = "no-op"

HOOKS = ("_init", "_start", "_stop", "_destroy")
INIT = ["before_init", "_init", "after_init"]
START = ["before_start", "_start", "start", "after_start"]
STOP = ["before_stop", "stop", "_stop", "after_stop"]
DESTROY = ["before_destroy", "_destroy", "after_destroy"]


class Boom(Exception):
    pass


class Probe(Lifecycle):
    """Records hooks and events in ``log`` and the state edges it took in ``edges``; ``fail``
    names hooks/events that raise; ``inside`` maps a hook or event name to a function run there."""

    def __init__(self):
        super().__init__()
        self.log = []
        self.edges = set()
        self.fail = set()
        self.inside = {}
        self._seen = S.NEW
        self.add_lifecycle_listener(self._listen)

    def _listen(self, event):
        self.edges.add((self._seen, self.state))
        self._seen = self.state
        self._step(event.type)

    def _step(self, name):
        self.log.append(name)
        inside = self.inside.pop(name, None)
        if inside is not None:
            inside()
        if name in self.fail:
            raise Boom(name)

    def _init(self):
        self._step("_init")

    def _start(self):
        self._step("_start")

    def _stop(self):
        self._step("_stop")

    def _destroy(self):
        self._step("_destroy")


def crash():
    raise Boom("greenlet")


def reach(state):
    """A probe in a state where no operation is running, reached by real operations."""
    p = Probe()
    if state is S.INITIALIZED:
        p.init()
    elif state is S.STARTED:
        p.start()
    elif state is S.STOPPED:
        p.start()
        p.stop()
    elif state is S.FAILED:
        p.start()
        p.spawn(crash).join()       # an owned greenlet dies while the component runs
    elif state is S.DESTROYED:
        p.destroy()
    assert p.state is state
    p.log.clear()
    return p


# (state, operation) -> (resulting state, what runs, in order) or RAISE, for every resting state
RESTING = {
    S.NEW: {
        "init": (S.INITIALIZED, INIT),
        "start": (S.STARTED, INIT + START),
        "stop": (S.STOPPED, ["after_stop"]),
        "destroy": (S.DESTROYED, DESTROY),
    },
    S.INITIALIZED: {
        "init": (S.INITIALIZED, []),
        "start": (S.STARTED, START),
        "stop": (S.STOPPED, ["after_stop"]),       # never started: _stop() has nothing to undo
        "destroy": (S.DESTROYED, DESTROY),
    },
    S.STARTED: {
        "init": (S.STARTED, []),
        "start": (S.STARTED, []),
        "stop": (S.STOPPED, STOP),
        "destroy": (S.DESTROYED, STOP + DESTROY),
    },
    S.STOPPED: {
        "init": RAISE,
        "start": (S.STARTED, START),
        "stop": (S.STOPPED, []),
        "destroy": (S.DESTROYED, DESTROY),
    },
    S.FAILED: {
        "init": RAISE,
        "start": (S.STARTED, STOP + START),
        "stop": (S.STOPPED, STOP),
        "destroy": (S.DESTROYED, STOP + DESTROY),
    },
    S.DESTROYED: {
        "init": RAISE,
        "start": RAISE,
        "stop": RAISE,
        "destroy": (S.DESTROYED, []),
    },
}

def outcomes(init, start, stop, destroy):
    return {"init": init, "start": start, "stop": stop, "destroy": destroy}


# states an operation passes through, how to be inside each (the state it starts from, the
# operation that leads there, the hook or event during which the state holds), and what each
# operation does when called then
TRANSIENT = {
    S.INITIALIZING: (S.NEW, "init", "_init", outcomes(RAISE, RAISE, RAISE, RAISE)),
    S.STARTING_PREP: (S.INITIALIZED, "start", "_start", outcomes(NOOP, NOOP, RAISE, RAISE)),
    S.STARTING: (S.INITIALIZED, "start", "start", outcomes(NOOP, NOOP, RAISE, RAISE)),
    S.STOPPING_PREP: (S.STARTED, "stop", "before_stop", outcomes(RAISE, RAISE, NOOP, RAISE)),
    S.STOPPING: (S.STARTED, "stop", "_stop", outcomes(RAISE, RAISE, NOOP, RAISE)),
    S.DESTROYING: (S.STOPPED, "destroy", "_destroy", outcomes(RAISE, RAISE, RAISE, NOOP)),
}


def test_the_tables_cover_every_state_and_operation():
    assert set(RESTING) | set(TRANSIENT) == set(S)
    assert not set(RESTING) & set(TRANSIENT)
    assert all(set(row) == set(OPS) for row in RESTING.values())
    assert all(set(row[3]) == set(OPS) for row in TRANSIENT.values())
    assert set(TRANSITIONS) == set(S) and set(EVENTS) == set(S) - {S.NEW}


@pytest.mark.parametrize("state, op", [(s, op) for s in RESTING for op in OPS],
                         ids=lambda v: getattr(v, "value", v))
def test_operation_from_a_resting_state(state, op):
    p = reach(state)
    expected = RESTING[state][op]
    if expected is RAISE:
        with pytest.raises(LifecycleError, match="cannot %s from %s" % (op, state.value)):
            getattr(p, op)()
        assert p.state is state and p.log == []       # nothing changed, nothing fired, no hook ran
        return
    getattr(p, op)()
    assert (p.state, p.log) == expected


@pytest.mark.parametrize("state, op", [(s, op) for s in TRANSIENT for op in OPS],
                         ids=lambda v: getattr(v, "value", v))
def test_operation_called_while_another_one_runs(state, op):
    origin, outer, during, expected = TRANSIENT[state]
    p = reach(origin)
    seen = {}

    def nested():
        before = list(p.log)
        seen["state"] = p.state
        try:
            getattr(p, op)()
            seen["outcome"] = NOOP
        except LifecycleError as exc:
            seen["outcome"], seen["message"] = RAISE, str(exc)
        seen["unchanged"] = p.state is state and p.log == before
    p.inside[during] = nested
    getattr(p, outer)()                # the outer operation completes as if nothing had been asked
    assert seen["state"] is state
    assert seen["outcome"] == expected[op]
    if expected[op] is RAISE:
        assert "cannot %s from %s" % (op, state.value) in seen["message"]
    assert seen["unchanged"]
    assert p.state is {"init": S.INITIALIZED, "start": S.STARTED, "stop": S.STOPPED,
                       "destroy": S.DESTROYED}[outer]


# -- into FAILED: each way a hook, a listener or an owned greenlet can fail --------------------------
def started_probe():
    p = Probe()
    p.start()
    p.log.clear()
    return p


def failing(where, origin=S.NEW):
    p = reach(origin)
    p.fail.add(where)
    return p


FAILURES = {
    # name: (probe, operation, the state it failed in, what ran, resulting state)
    "init hook": (lambda: failing("_init"), "init", S.INITIALIZING,
                  ["before_init", "_init", "failed"], S.FAILED),
    "before_init listener": (lambda: failing("before_init"), "init", S.INITIALIZING,
                             ["before_init", "failed"], S.FAILED),
    # a failed start is stopped at once, releasing what the start acquired
    "start hook": (lambda: failing("_start", S.INITIALIZED), "start", S.STARTING_PREP,
                   ["before_start", "_start", "failed"] + STOP, S.STOPPED),
    "start listener": (lambda: failing("start", S.INITIALIZED), "start", S.STARTING,
                       ["before_start", "_start", "start", "failed"] + STOP, S.STOPPED),
    "after_start listener": (lambda: failing("after_start", S.INITIALIZED), "start", S.STARTED,
                             START + ["failed"] + STOP, S.STOPPED),
    "before_stop listener": (lambda: failing("before_stop", S.STARTED), "stop", S.STOPPING_PREP,
                             ["before_stop", "failed"], S.FAILED),
    "stop hook": (lambda: failing("_stop", S.STARTED), "stop", S.STOPPING,
                  ["before_stop", "stop", "_stop", "failed"], S.FAILED),
    "destroy hook": (lambda: failing("_destroy", S.STOPPED), "destroy", S.DESTROYING,
                     ["before_destroy", "_destroy", "failed"], S.FAILED),
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_a_failure_moves_to_failed_and_raises_one_lifecycle_error(name):
    make, op, failed_in, ran, final = FAILURES[name]
    p = make()
    states = []
    p.add_lifecycle_listener(lambda e: states.append(e.source.state) if e.type == "failed" else None)
    with pytest.raises(LifecycleError) as info:
        getattr(p, op)()
    assert isinstance(info.value.__cause__, Boom)
    assert p.log == ran and p.state is final
    assert (failed_in, S.FAILED) in p.edges and states == [S.FAILED]


def test_a_greenlet_dying_while_started_fails_the_component():
    p = started_probe()
    p.spawn(crash).join()
    assert p.state is S.FAILED and p.log == ["failed"]
    assert (S.STARTED, S.FAILED) in p.edges
    p.start()                          # started again: stopped first, then a fresh start
    assert p.state is S.STARTED and p.log == ["failed"] + STOP + START


def test_a_greenlet_dying_during_start_fails_the_start():
    p = Probe()

    def spawn_and_yield():
        p.spawn(crash)
        gevent.sleep(0)                # the start yields (I/O); the greenlet runs and dies
    p.inside["_start"] = spawn_and_yield
    with pytest.raises(LifecycleError, match="failed during start"):
        p.start()
    assert p.log == INIT + ["before_start", "_start", "failed"] + STOP and p.state is S.STOPPED
    # positive control: the same start without the crash succeeds
    q = Probe()
    q.inside["_start"] = lambda: q.spawn(gevent.sleep, 0)
    q.start()
    assert q.state is S.STARTED


def test_a_greenlet_dying_while_stopping_does_not_fail_the_stop():
    p = started_probe()

    def dying_during_stop():
        p.spawn(crash)
        gevent.sleep(0)
    p.inside["_stop"] = dying_during_stop
    p.stop()
    assert p.state is S.STOPPED and p.log == STOP


def test_stop_kills_the_owned_greenlets_even_when_the_stop_hook_fails():
    p = started_probe()
    g = p.spawn(gevent.sleep, 60)
    p.fail.add("_stop")
    with pytest.raises(LifecycleError):
        p.stop()
    assert g.dead and p.state is S.FAILED
    p.fail.clear()
    p.stop()                           # a second stop from FAILED completes
    assert p.state is S.STOPPED


def test_stop_of_an_initialized_component_releases_greenlets_and_skips_the_stop_hook():
    p = Probe()
    p.inside["_init"] = lambda: p.spawn(gevent.sleep, 60)
    p.init()
    g = next(iter(p.greenlets))
    p.log.clear()
    p.stop()
    assert p.state is S.STOPPED and p.log == ["after_stop"] and g.dead
    assert (S.INITIALIZED, S.STOPPED) in p.edges


# -- the table itself --------------------------------------------------------------------------------
@pytest.mark.parametrize("current, target", list(itertools.product(S, S)), ids=lambda s: s.value)
def test_set_state_follows_the_table_and_an_illegal_move_changes_nothing(current, target):
    p = Probe()
    p._state = current                 # white box: every pair, including the unreachable ones
    if target in TRANSITIONS[current]:
        p._set_state(target)
        assert p.state is target and p.log == [EVENTS[target]]
    else:
        with pytest.raises(LifecycleError, match="illegal transition"):
            p._set_state(target)
        assert p.state is current and p.log == []


def every_scenario():
    """Run every scenario above once; yield each probe (for the edge coverage check)."""
    for state in RESTING:
        for op in OPS:
            p = reach(state)
            try:
                getattr(p, op)()
            except LifecycleError:
                pass
            yield p
    for state, (origin, outer, during, _) in TRANSIENT.items():
        p = reach(origin)
        getattr(p, outer)()
        yield p
    for make, op, _, _, _ in FAILURES.values():
        p = make()
        with pytest.raises(LifecycleError):
            getattr(p, op)()
        yield p


def test_every_edge_of_the_table_is_taken_by_some_operation():
    taken = set()
    for p in every_scenario():
        taken |= p.edges
    table = {(a, b) for a, nexts in TRANSITIONS.items() for b in nexts}
    assert taken - table == set()      # no operation moves outside the table
    assert table - taken == set()      # and no edge of the table is dead


def test_a_start_listener_sees_everything_started_and_a_stop_listener_everything_running():
    """The contract HostConfig relies on: on ``start`` the component's _start() is done (its
    children and parts run); on ``stop`` its _stop() has not begun."""
    p = Probe()
    marks = {}
    p.add_lifecycle_listener(lambda e: marks.setdefault(e.type, list(p.log)))
    p.start()
    p.stop()
    assert marks["start"][-2:] == ["_start", "start"]
    assert "_stop" not in marks["stop"] and marks["after_stop"][-2:] == ["_stop", "after_stop"]


def test_an_operation_cut_short_by_greenlet_exit_leaves_the_component_failed_and_stoppable():
    p = Probe()
    p.init()
    p.log.clear()

    def killed():
        raise gevent.GreenletExit()
    p.inside["_start"] = killed
    with pytest.raises(gevent.GreenletExit):       # passed through as it is, not wrapped
        p.start()
    # no stop() from inside a dying greenlet; the component waits in FAILED for its owner's
    assert p.state is S.FAILED and p.log == ["before_start", "_start", "failed"]
    p.stop()
    assert p.state is S.STOPPED and p.log[-4:] == STOP
