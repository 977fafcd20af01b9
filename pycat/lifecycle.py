"""Lifecycle: the one state machine every component follows (Tomcat's LifecycleBase).

States and the allowed transitions live in one table. The public ``init/start/stop/destroy``
are written once here; they are idempotent, fire events to listeners and call the subclass
hooks ``_init/_start/_stop/_destroy``. ``start()`` from NEW runs ``init()`` first; a failing
hook moves the component to FAILED and ``start()`` then runs ``stop()`` to release what was
acquired, re-raising the error as LifecycleError.

Every greenlet belongs to a component: ``spawn()`` puts it in the component's own
``gevent.pool.Group``; ``stop()`` kills and joins them after ``_stop()``. A greenlet that dies
with an unexpected exception is logged with the component's name and moves it to FAILED.
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
# state -> states it may move to. FAILED is reachable from every working state.
TRANSITIONS = {
    S.NEW: {S.INITIALIZING, S.STARTING_PREP, S.STOPPED, S.DESTROYING},
    S.INITIALIZING: {S.INITIALIZED, S.FAILED},
    S.INITIALIZED: {S.STARTING_PREP, S.DESTROYING},
    S.STARTING_PREP: {S.STARTING, S.FAILED},
    S.STARTING: {S.STARTED, S.FAILED},
    S.STARTED: {S.STOPPING_PREP, S.FAILED},
    S.STOPPING_PREP: {S.STOPPING, S.FAILED},
    S.STOPPING: {S.STOPPED, S.FAILED},
    S.STOPPED: {S.STARTING_PREP, S.DESTROYING},
    S.DESTROYING: {S.DESTROYED, S.FAILED},
    S.DESTROYED: set(),
    S.FAILED: {S.STOPPING_PREP, S.STOPPING, S.DESTROYING, S.STARTING_PREP},
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
        if state is not S.FAILED and state not in TRANSITIONS[self._state]:
            raise LifecycleError("%s: illegal transition %s -> %s"
                                 % (self.component_name, self._state.value, state.value))
        self._state = state
        self.fire_lifecycle_event(EVENTS[state], data)

    # -- the four public transitions -------------------------------------------------------
    def init(self):
        if self._state is not S.NEW:
            if self._state in (S.INITIALIZED, S.STARTED, S.STARTING, S.STARTING_PREP):
                return
            raise LifecycleError("%s: cannot init from %s" % (self.component_name, self._state.value))
        self._set_state(S.INITIALIZING)
        self._run_hook(self._init, "init")
        self._set_state(S.INITIALIZED)

    def start(self):
        if self._state in (S.STARTING_PREP, S.STARTING, S.STARTED):
            log.debug("%s already started", self.component_name)
            return
        if self._state is S.NEW:
            self.init()
        elif self._state is S.FAILED:
            self.stop()
        elif self._state not in (S.INITIALIZED, S.STOPPED):
            raise LifecycleError("%s: cannot start from %s" % (self.component_name, self._state.value))
        self._set_state(S.STARTING_PREP)
        try:
            self._set_state(S.STARTING)
            self._start()
        except Exception as exc:
            self._set_state(S.FAILED, exc)
            try:
                self.stop()
            except Exception:
                log.exception("%s: stop after failed start also failed", self.component_name)
            if isinstance(exc, LifecycleError):
                raise
            raise LifecycleError("%s failed to start: %s" % (self.component_name, exc)) from exc
        if self._state is S.STARTING:
            self._set_state(S.STARTED)

    def stop(self):
        if self._state in (S.STOPPING_PREP, S.STOPPING, S.STOPPED):
            return
        if self._state is S.NEW:
            self._set_state(S.STOPPED)
            return
        if self._state is S.INITIALIZED:
            self._state = S.STOPPED
            return
        if self._state not in (S.STARTED, S.FAILED):
            raise LifecycleError("%s: cannot stop from %s" % (self.component_name, self._state.value))
        self._set_state(S.STOPPING_PREP)
        self._set_state(S.STOPPING)
        try:
            self._stop()
        finally:
            self._kill_greenlets()
        self._set_state(S.STOPPED)

    def destroy(self):
        if self._state in (S.DESTROYING, S.DESTROYED):
            return
        if self._state in (S.STARTED, S.FAILED):
            self.stop()
        self._set_state(S.DESTROYING)
        self._run_hook(self._destroy, "destroy")
        self._set_state(S.DESTROYED)

    def _run_hook(self, hook, what):
        try:
            hook()
        except LifecycleError:
            self._set_state(S.FAILED)
            raise
        except Exception as exc:
            self._set_state(S.FAILED, exc)
            raise LifecycleError("%s failed to %s: %s" % (self.component_name, what, exc)) from exc

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
            if self._state in (S.STARTING, S.STARTED):
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
