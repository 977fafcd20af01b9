"""Deployment work that shares the hub with requests (used by war.py and loader.py).

Expanding a WAR and compiling hundreds of modules is CPU and file work that would otherwise
hold the gevent hub for the whole deploy, so every other app's requests would wait for it.
"""
import contextlib
import contextvars
import time

import gevent

_last_yield = [0.0]
_cooperative = contextvars.ContextVar("pycat_deploy_cooperative", default=False)


@contextlib.contextmanager
def cooperative():
    """Mark the body as deployment work that may yield (see cooperate())."""
    token = _cooperative.set(True)
    try:
        yield
    finally:
        _cooperative.reset(token)


def cooperate(slice_seconds=0.002, wait_idle=0.01):
    """Long deployment work (expanding, compiling) calls this often. Inside ``cooperative()``,
    after every ``slice_seconds`` of work it waits until the event loop is idle -- no request
    ready to be served -- but no longer than ``wait_idle``: requests of the other apps go first,
    and a deploy still progresses under constant load. Elsewhere (a request importing a module
    lazily) it does nothing: yielding in the middle of an import another greenlet may make
    too would let that one see a half-initialised module (without monkey patching, importlib's
    module locks are per thread, not per greenlet). A deployer only imports the modules of a
    generation no request can reach yet, or of a paused Context."""
    if not _cooperative.get():
        return
    now = time.perf_counter()
    if now - _last_yield[0] >= slice_seconds:
        with gevent.Timeout(wait_idle, False):
            gevent.idle()
        _last_yield[0] = time.perf_counter()
