"""Resource limits shared by the receiver and the membership service: pure bookkeeping, no sockets.

``BufferBudget`` is the receiver's total buffer budget: each connection charges the size of the
frame it is assembling before it buffers it, and gives it back when the frame completes or the
connection closes. A charge that does not fit is refused, and the connection owner closes that
connection, so the bytes held in partial frames never exceed the budget, however many
connections a peer opens.

``PeerLog`` writes a warning about a peer at most once per ``interval`` seconds per peer host, and
then says how many more it held back. A misbehaving or hostile peer repeats the same mistake
on every connection; one line per peer keeps the log readable and costs it no disk. The table
of peers is bounded: when ``max_peers`` distinct hosts are being tracked, stale entries are
dropped (their held-back count logged), and if none is stale the newcomers share one entry.
"""
import logging
import time

_OTHERS = "(other peers)"


class BufferBudget:
    """Bytes in use out of ``limit`` (<= 0: unlimited), charged and released by the callers."""

    __slots__ = ("limit", "used", "refused")

    def __init__(self, limit):
        self.limit = limit
        self.used = 0
        self.refused = 0

    def try_charge(self, n):
        """Charge n bytes; False (and nothing charged) when they do not fit."""
        if n <= 0:
            return True
        if 0 < self.limit < self.used + n:
            self.refused += 1
            return False
        self.used += n
        return True

    def release(self, n):
        if n > 0:
            self.used = max(0, self.used - n)


class PeerLog:
    """Rate-limited warnings keyed by peer host: the first one now, the rest summarised later."""

    def __init__(self, logger, interval=60.0, max_peers=256, clock=time.monotonic):
        self.logger = logger
        self.interval = interval
        self.max_peers = max(1, max_peers)
        self.clock = clock
        self._peers = {}  # host -> [time last written, events held back since]

    def warning(self, host, fmt, *args):
        """Log ``fmt % args`` for host unless one was written for it within ``interval``;
        True when a line was written."""
        return self.log(logging.WARNING, host, fmt, *args)

    def log(self, level, host, fmt, *args):
        now = self.clock()
        entry = self._peers.get(host)
        if entry is None:
            host = self._make_room(host, now)
            entry = self._peers.get(host)
        if entry is not None and now - entry[0] < self.interval:
            entry[1] += 1
            return False
        held = entry[1] if entry is not None else 0
        self._peers[host] = [now, 0]
        if held:
            fmt += " (%d similar event(s) from this peer not logged in the last %.0f s)"
            args += (held, self.interval)
        self.logger.log(level, fmt, *args)
        return True

    def _make_room(self, host, now):
        """The key to file a new host under: itself, once the table has room."""
        if len(self._peers) < self.max_peers:
            return host
        for known, (written, held) in list(self._peers.items()):
            if now - written >= self.interval:
                del self._peers[known]
                if held:  # its count would be lost with it: say it now
                    self.logger.warning("%d more event(s) from %s were not logged", held, known)
        return host if len(self._peers) < self.max_peers else _OTHERS
