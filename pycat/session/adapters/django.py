"""Old path of pycat.adapters.django, kept so a configuration naming it keeps working:
``SESSION_ENGINE = "pycat.session.adapters.django"``.

The adapters live in pycat.adapters, above ``core``. This alias is an import of a higher layer that the
layer test allows in ``session`` by name (tests/test_layers.py, ALIASES_UP).
"""
import sys

import pycat.adapters.django as _new

# one module under both names: the same classes, functions and module state
sys.modules[__name__] = _new
