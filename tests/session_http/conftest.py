import os
import sys

import pytest

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# shared harnesses: the in-process tree (tests/core), real nodes (tests/integration), PostgreSQL (tests/session)
for sub in ("core", "integration", "session"):
    path = os.path.join(_TESTS, sub)
    if path not in sys.path:
        sys.path.append(path)

from node_helpers import Procs  # noqa: E402


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.cleanup()
