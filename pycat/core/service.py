"""Service: one Engine and the Connectors feeding it (Tomcat's StandardService).

Start order: executors, Engine, then Connectors (so no request arrives before the tree is
ready); stop order is the reverse: Connectors first.
"""
import logging

from pycat.attrs import Attr
from pycat.lifecycle import Lifecycle

log = logging.getLogger(__name__)


class Service(Lifecycle):
    name = Attr(str, "Catalina", "Service name")

    def __init__(self):
        super().__init__()
        self.server = None
        self.container = None
        self.connectors = []
        self.executors = []

    @property
    def engine(self):
        return self.container

    def set_container(self, engine):
        engine.service = self
        self.container = engine
        if self.state.available:
            engine.start()

    set_engine = set_container

    def add_connector(self, connector):
        connector.service = self
        self.connectors.append(connector)
        if self.state.available:
            connector.start()

    def remove_connector(self, connector):
        self.connectors.remove(connector)
        connector.stop()

    def add_executor(self, executor):
        self.executors.append(executor)
        if self.state.available:
            executor.start()

    def find_executor(self, name):
        for executor in self.executors:
            if executor.name == name:
                return executor
        return None

    def _start(self):
        for executor in self.executors:
            executor.start()
        if self.container is not None:
            self.container.start()
        for connector in self.connectors:
            connector.start()

    def _stop(self):
        for part in list(reversed(self.connectors)) + [self.container] + list(reversed(self.executors)):
            if part is None:
                continue
            try:
                part.stop()
            except Exception:
                log.exception("%s: stopping %s failed", self.component_name, part.component_name)

    def _destroy(self):
        for part in self.connectors + [self.container] + self.executors:
            if part is not None:
                part.destroy()
