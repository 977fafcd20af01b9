"""Lifecycle: the one state machine every component follows (Tomcat's LifecycleBase).

States and the allowed transitions live in one table, ``TRANSITIONS``; ``_set_state`` refuses
any other move. The public ``init/start/stop/destroy`` are written once here; they are
idempotent, fire one event per state entered to the listeners (``EVENTS``) and call the
subclass hooks ``_init/_start/_stop/_destroy``. An operation asked from a state where it means
nothing (``stop()`` while STARTING, anything on DESTROYED but ``destroy()``) raises
LifecycleError and changes nothing: no state, no event.

Order, as Tomcat: a start fires ``before_start`` (STARTING_PREP), runs ``_start()``, then fires
``start`` (STARTING) and ``after_start`` (STARTED). Tomcat's ContainerBase sets STARTING at the
*end* of startInternal, after its cluster, realm, children and pipeline started, and HostConfig
deploys on that event; so here too a listener on ``start`` finds the component and everything
below it running. A stop fires ``before_stop`` (STOPPING_PREP) and ``stop`` (STOPPING), runs
``_stop()``, then fires ``after_stop`` (STOPPED). A component that never started (NEW or
INITIALIZED) stops without running ``_stop()``: only ``after_stop`` fires.

Failures: a hook or a listener that raises moves the component to FAILED and surfaces as one
LifecycleError (the original as its cause). ``start()`` from NEW runs ``init()`` first; a failed
start then runs ``stop()`` to release what was acquired (a bound port, a greenlet), so the
component ends STOPPED. An operation cut short because its greenlet is being killed
(GreenletExit) also leaves the component FAILED, with the exception passed on unchanged, for its
owner to stop. ``start()`` from FAILED stops first; ``destroy()`` from STARTED or FAILED stops
first.

Every greenlet belongs to a component: ``spawn()`` puts it in the component's own
``gevent.pool.Group``; ``stop()`` kills and joins them after ``_stop()``. A greenlet that dies
with an unexpected exception is logged with the component's name and moves it to FAILED (while
it starts or runs); if that happens during ``start()``, the start fails as above.
"""
import enum
import logging

import gevent
import gevent.pool

from pycat.errors import LifecycleError

log = logging.getLogger(__name__)


class LifecycleState(enum.Enum):
    NEW = "NEW"
    INITIALIZING = "INITIALIZING"
    INITIALIZED = "INITIALIZED"
    STARTING_PREP = "STARTING_PREP"
    STARTING = "STARTING"
    STARTED = "STARTED"
    STOPPING_PREP = "STOPPING_PREP"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    DESTROYING = "DESTROYING"
    DESTROYED = "DESTROYED"
    FAILED = "FAILED"

    @property
    def available(self):
        return self is LifecycleState.STARTED


S = LifecycleState
# state -> the states it may move to; nothing else decides. Every edge is taken by some
# operation (tests/test_lifecycle.py walks them all). FAILED is reachable from every state in
# which a hook, a listener or an owned greenlet runs, and is left only by stopping.
TRANSITIONS = {
    S.NEW: {S.INITIALIZING, S.STOPPED, S.DESTROYING},
    S.INITIALIZING: {S.INITIALIZED, S.FAILED},
    # stop() of a component that was initialised but never started (a server whose start was
    # refused after init bound its ports): straight to STOPPED, firing after_stop; destroy()
    # then releases what init acquired
    S.INITIALIZED: {S.STARTING_PREP, S.STOPPED, S.DESTROYING},
    S.STARTING_PREP: {S.STARTING, S.FAILED},
    S.STARTING: {S.STARTED, S.FAILED},
    S.STARTED: {S.STOPPING_PREP, S.FAILED},
    S.STOPPING_PREP: {S.STOPPING, S.FAILED},
    S.STOPPING: {S.STOPPED, S.FAILED},
    S.STOPPED: {S.STARTING_PREP, S.DESTROYING},
    S.DESTROYING: {S.DESTROYED, S.FAILED},
    S.DESTROYED: set(),
    S.FAILED: {S.STOPPING_PREP},
}

# Events fired to listeners, by state entered.
EVENTS = {
    S.INITIALIZING: "before_init", S.INITIALIZED: "after_init",
    S.STARTING_PREP: "before_start", S.STARTING: "start", S.STARTED: "after_start",
    S.STOPPING_PREP: "before_stop", S.STOPPING: "stop", S.STOPPED: "after_stop",
    S.DESTROYING: "before_destroy", S.DESTROYED: "after_destroy",
    S.FAILED: "failed",
}
PERIODIC_EVENT = "periodic"

# states in which an owned greenlet dying means the component failed
_RUNNING = (S.STARTING_PREP, S.STARTING, S.STARTED)


class LifecycleEvent:
    __slots__ = ("source", "type", "data")

    def __init__(self, source, type, data=None):
        self.source, self.type, self.data = source, type, data

    def __repr__(self):
        return "LifecycleEvent(%r, %r)" % (self.source, self.type)


class Lifecycle:
    """Base of every component with a life: servers, connectors, valves, channels, managers."""

    #: seconds stop() waits for this component's greenlets before killing them harder
    stop_join_timeout = 5.0

    def __init__(self):
        self._state = S.NEW
        self._lifecycle_listeners = []
        self._greenlets = gevent.pool.Group()

    # -- naming, for logs ---------------------------------------------------------------
    @property
    def component_name(self):
        name = getattr(self, "name", None)
        return "%s[%s]" % (type(self).__name__, name) if name else type(self).__name__

    def __repr__(self):
        return "<%s %s>" % (self.component_name, self._state.value)

    # -- listeners -----------------------------------------------------------------------
    @property
    def state(self):
        return self._state

    def add_lifecycle_listener(self, listener):
        """A listener is a callable taking a LifecycleEvent, or an object with lifecycle_event()."""
        self._lifecycle_listeners.append(listener)

    def remove_lifecycle_listener(self, listener):
        self._lifecycle_listeners.remove(listener)

    # server.xml's <Listener> attaches here
    add_listener = add_lifecycle_listener

    def fire_lifecycle_event(self, type, data=None):
        event = LifecycleEvent(self, type, data)
        for listener in list(self._lifecycle_listeners):
            handler = getattr(listener, "lifecycle_event", listener)
            handler(event)

    def _set_state(self, state, data=None):
        if state not in TRANSITIONS[self._state]:
            raise LifecycleError("%s: illegal transition %s -> %s"
                                 % (self.component_name, self._state.value, state.value))
        self._state = state
        self.fire_lifecycle_event(EVENTS[state], data)

    def _refuse(self, operation):
        return LifecycleError("%s: cannot %s from %s" % (self.component_name, operation, self._state.value))

    # -- the four public transitions -------------------------------------------------------
    def init(self):
        if self._state in (S.INITIALIZED, S.STARTING_PREP, S.STARTING, S.STARTED):
            return
        if self._state is not S.NEW:
            raise self._refuse("init")
        self._transition("init", (S.INITIALIZING,), self._init, (S.INITIALIZED,))

    def start(self):
        if self._state in (S.STARTING_PREP, S.STARTING, S.STARTED):
            log.debug("%s already started", self.component_name)
            return
        if self._state is S.NEW:
            self.init()
        elif self._state is S.FAILED:
            self.stop()
        elif self._state not in (S.INITIALIZED, S.STOPPED):
            raise self._refuse("start")
        try:
            self._transition("start", (S.STARTING_PREP,), self._start, (S.STARTING, S.STARTED))
        except LifecycleError:
            try:
                self.stop()
            except Exception:
                log.exception("%s: stop after failed start also failed", self.component_name)
            raise

    def stop(self):
        if self._state in (S.STOPPING_PREP, S.STOPPING, S.STOPPED):
            return
        if self._state in (S.NEW, S.INITIALIZED):
            # nothing was started, so there is nothing for _stop() to undo
            self._kill_greenlets()
            self._set_state(S.STOPPED)
            return
        if self._state not in (S.STARTED, S.FAILED):
            raise self._refuse("stop")
        self._transition("stop", (S.STOPPING_PREP, S.STOPPING), self._stop_and_reap, (S.STOPPED,))

    def destroy(self):
        if self._state in (S.DESTROYING, S.DESTROYED):
            return
        if self._state in (S.STARTED, S.FAILED):
            self.stop()
        elif self._state not in (S.NEW, S.INITIALIZED, S.STOPPED):
            raise self._refuse("destroy")
        self._transition("destroy", (S.DESTROYING,), self._destroy, (S.DESTROYED,))

    def _transition(self, operation, before, hook, after):
        """Enter the ``before`` states, run the hook, enter the ``after`` states; anything that
        raises on the way (a listener, the hook, or an owned greenlet that died meanwhile and
        left the component FAILED) ends in FAILED and one LifecycleError."""
        try:
            for state in before:
                self._set_state(state)
            hook()
            for state in after:
                if self._state is S.FAILED:
                    raise LifecycleError("%s failed during %s (see the error logged above)"
                                         % (self.component_name, operation))
                self._set_state(state)
        except BaseException as exc:
            # FAILED even when the calling greenlet is being killed (GreenletExit) mid-operation:
            # a later stop() is then allowed to release what was acquired
            if self._state is not S.FAILED:
                self._set_state(S.FAILED, exc)
            if isinstance(exc, LifecycleError) or not isinstance(exc, Exception):
                raise
            raise LifecycleError("%s failed to %s: %s" % (self.component_name, operation, exc)) from exc

    def _stop_and_reap(self):
        try:
            self._stop()
        finally:
            self._kill_greenlets()

    # -- hooks for subclasses ------------------------------------------------------------
    def _init(self):
        pass

    def _start(self):
        pass

    def _stop(self):
        pass

    def _destroy(self):
        pass

    # -- owned greenlets -----------------------------------------------------------------
    def spawn(self, func, *args, **kwargs):
        """Run func in a greenlet owned by this component (killed by stop())."""
        g = self._greenlets.spawn(self._guard, func, *args, **kwargs)
        g.name = self._greenlet_name(func)
        return g

    def spawn_later(self, seconds, func, *args, **kwargs):
        g = gevent.Greenlet(self._guard, func, *args, **kwargs)
        g.name = self._greenlet_name(func)
        self._greenlets.add(g)
        g.start_later(seconds)
        return g

    def _greenlet_name(self, func):
        # "Engine[Catalina].background_loop": what log lines show as their thread (startup.catalina)
        return "%s.%s" % (self.component_name, getattr(func, "__name__", type(func).__name__).lstrip("_"))

    def _guard(self, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except gevent.GreenletExit:
            raise
        except Exception as exc:
            log.exception("%s: unexpected error in %s", self.component_name,
                          getattr(func, "__qualname__", func))
            if self._state in _RUNNING:
                self._set_state(S.FAILED, exc)
            return None

    @property
    def greenlets(self):
        return self._greenlets

    def _kill_greenlets(self):
        current = gevent.getcurrent()
        others = [g for g in self._greenlets if g is not current]
        if others:
            gevent.killall(others, block=True, timeout=self.stop_join_timeout)
