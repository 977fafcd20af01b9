"""Test helpers every folder shares: wait on a condition inside the gevent hub, and give each test a
multicast group of its own so parallel runs (and real clusters) never meet."""
import random
import socket
import time

import gevent


def wait_for(condition, timeout=5.0, what="condition", interval=0.01, tick=None):
    """Poll condition() until true; AssertionError after timeout. tick() runs between polls."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        if tick is not None:
            tick()
        gevent.sleep(interval)


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_mcast_group():
    """(a random 228.x.y.z group, a free UDP port)."""
    rng = random.SystemRandom()
    return "228.%d.%d.%d" % (rng.randrange(1, 255), rng.randrange(256), rng.randrange(1, 255)), free_udp_port()
