"""Pipelines and valves (Tomcat's StandardPipeline / ValveBase).

A container's pipeline is its valves in document order followed by its *basic* valve, which
hands the request to the next container down (Engine → Host → Context → Wrapper → servlet).
The chain is linked once, when valves are added, so a request walks ``valve.next`` pointers
and never a list: ``pipeline.first.invoke(request, response)``.
"""
import logging

from pycat.lifecycle import Lifecycle, LifecycleState

log = logging.getLogger(__name__)


class Valve(Lifecycle):
    """Base valve: ``invoke`` does its work and forwards to ``self.next``."""

    def __init__(self):
        super().__init__()
        self.next = None
        self.container = None

    def invoke(self, request, response):
        self.next.invoke(request, response)

    def background_process(self):
        """Called by the Engine's background greenlet every backgroundProcessorDelay seconds."""

    # Tomcat's ValveBase has setProperty-less beans; valves declare Attrs.


# Tomcat's name for the base class, for users porting custom valves
ValveBase = Valve


class Pipeline:
    """The valves of one container, linked into a chain that ends in the basic valve."""

    def __init__(self, container=None, basic=None):
        self.container = container
        self.valves = []
        self.basic = None
        self.first = None
        if basic is not None:
            self.set_basic(basic)

    def set_basic(self, valve):
        valve.container = self.container
        self.basic = valve
        self._relink()

    def add_valve(self, valve):
        valve.container = self.container
        self.valves.append(valve)
        self._relink()
        if self.container is not None and self.container.state is LifecycleState.STARTED:
            valve.start()

    def remove_valve(self, valve):
        self.valves.remove(valve)
        self._relink()
        valve.stop()

    def insert_valve(self, index, valve):
        """Valves the container adds itself (cluster valves, the default ErrorReportValve)."""
        valve.container = self.container
        self.valves.insert(index, valve)
        self._relink()
        if self.container is not None and self.container.state is LifecycleState.STARTED:
            valve.start()

    def find_valve(self, cls):
        for valve in self.valves:
            if isinstance(valve, cls):
                return valve
        return None

    def _relink(self):
        chain = self.valves + ([self.basic] if self.basic is not None else [])
        for valve, nxt in zip(chain, chain[1:] + [None]):
            valve.next = nxt
        self.first = chain[0] if chain else None

    def all_valves(self):
        return self.valves + ([self.basic] if self.basic is not None else [])

    def start(self):
        for valve in self.all_valves():
            valve.start()

    def stop(self):
        for valve in reversed(self.all_valves()):
            try:
                valve.stop()
            except Exception:
                log.exception("stopping valve %s failed", valve.component_name)

    def background_process(self):
        for valve in self.valves:
            try:
                valve.background_process()
            except Exception:
                log.exception("background processing of %s failed", valve.component_name)
