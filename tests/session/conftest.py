import pytest

from pycat.session.manager import StandardManager


class FakeClock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class Recorder:
    """A listener of every kind, recording (event name, session id, attribute name, value)."""

    def __init__(self, log=None, tag=""):
        self.events = [] if log is None else log
        self.tag = tag

    def _rec(self, kind, *rest):
        self.events.append((self.tag + kind,) + rest)

    def session_created(self, event):
        self._rec("created", event.session.id)

    def session_destroyed(self, event):
        # attributes are still readable while destroyed listeners run
        self._rec("destroyed", event.session.id, sorted(event.session.attribute_names()))

    def attribute_added(self, event):
        self._rec("added", event.name, event.value)

    def attribute_replaced(self, event):
        self._rec("replaced", event.name, event.value)

    def attribute_removed(self, event):
        self._rec("removed", event.name, event.value)

    def session_id_changed(self, event, old_id):
        self._rec("id_changed", old_id, event.session.id)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def manager(clock, tmp_path):
    m = StandardManager()
    m.clock = clock
    m.work_dir = str(tmp_path)
    return m


@pytest.fixture(name="Recorder")
def recorder_class():
    return Recorder
