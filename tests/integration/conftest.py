import pytest

from node_helpers import Procs


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.cleanup()
