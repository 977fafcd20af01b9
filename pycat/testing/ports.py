"""Free ports and multicast groups for test nodes, unique across processes on this machine.

Binding port 0 and closing the socket (the usual "free port") leaves a gap before the node binds
the number, in which another pytest-xdist worker, another test session or any client's outgoing
connection may take it. Here a port is *held* from the moment it is handed out until it is
released (when its node is finished):

* Candidates come from below the kernel's ephemeral range (``ip_local_port_range``, 32768-60999
  by default on Linux), so the source port of an outgoing connection never lands on them; the
  range is ``[10000, lowest ephemeral)`` unless ``PYCAT_TEST_PORTS=LOW-HIGH`` says otherwise.
* A port is held by a POSIX record lock on byte N of one shared file
  (``$TMPDIR/pycat-testing-<uid>/ports.lock``): the kernel releases it when the holding process
  dies however it dies, so nothing goes stale; within one process a set does the same (record
  locks do not conflict inside a process).
* A held candidate is then probed: it must bind on 127.0.0.1 for both TCP and UDP, so a port some
  other program listens on is skipped.
* Each process starts its search at an offset taken from its pid and xdist worker id, so workers
  seldom even try the same numbers.

Multicast groups: ``mcast_group()`` gives a 228.x.y.z group derived from the worker id, the pid and
a counter, and a held UDP port; two clusters started anywhere on the machine through this module
never share a (group, port).

Plain stdlib; no pytest, nothing of pycat's server.
"""
import hashlib
import itertools
import os
import socket
import tempfile
import threading

try:
    import fcntl
except ImportError:         # not POSIX: uniqueness inside this process only
    fcntl = None

DEFAULT_LOW = 10000
_LOCK_DIR_ENV = "PYCAT_TEST_LOCK_DIR"
_RANGE_ENV = "PYCAT_TEST_PORTS"


def worker_id():
    """pytest-xdist's worker id ("gw0", "gw1"...) or "main" outside xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_range():
    """(low, high) inclusive: PYCAT_TEST_PORTS, else 10000 up to below the ephemeral range."""
    spec = os.environ.get(_RANGE_ENV)
    if spec:
        low, _, high = spec.partition("-")
        low, high = int(low), int(high or low)
        if not 1024 <= low <= high <= 65535:
            raise ValueError("%s=%r: expected LOW-HIGH within 1024-65535" % (_RANGE_ENV, spec))
        return low, high
    high = _ephemeral_low() - 1
    if high - DEFAULT_LOW < 1000:   # an unusual ephemeral range: take the ports above it instead
        return 61000, 65535
    return DEFAULT_LOW, high


def _probe(port):
    """True if 127.0.0.1:port binds for TCP and for UDP right now."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


class PortRegistry:
    """Hands out held ports (module doc). One per process: use ``registry()``."""

    def __init__(self, low=None, high=None, lock_path=None):
        if low is None:
            low, high = port_range()
        self.low, self.high = low, high
        self._held = set()
        self._mutex = threading.Lock()
        self._fd = None
        self.lock_path = lock_path or os.path.join(
            os.environ.get(_LOCK_DIR_ENV) or tempfile.gettempdir(),
            "pycat-testing-%s" % (os.getuid() if hasattr(os, "getuid") else "user"), "ports.lock")
        seed = hashlib.sha256(("%s/%d" % (worker_id(), os.getpid())).encode()).digest()
        self._next = int.from_bytes(seed[:4], "big") % (high - low + 1)

    def _lock_fd(self):
        if self._fd is None and fcntl is not None:
            os.makedirs(os.path.dirname(self.lock_path), mode=0o700, exist_ok=True)
            # never closed while the process lives: closing any descriptor of the file would drop
            # every record lock this process holds on it (POSIX)
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    def _try_lock(self, port):
        fd = self._lock_fd()
        if fd is None:
            return True
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
            return True
        except OSError:
            return False

    def _unlock(self, port):
        if self._fd is not None:
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, port)
            except OSError:
                pass

    def acquire(self):
        """A port no other registry user holds and that binds now; held until ``release``."""
        size = self.high - self.low + 1
        with self._mutex:
            for _ in range(size):
                port = self.low + self._next
                self._next = (self._next + 1) % size
                if port in self._held or not self._try_lock(port):
                    continue
                if not _probe(port):
                    self._unlock(port)
                    continue
                self._held.add(port)
                return port
        raise RuntimeError("no free port left in %d-%d" % (self.low, self.high))

    def release(self, port):
        with self._mutex:
            if port in self._held:
                self._held.discard(port)
                self._unlock(port)

    def held(self):
        with self._mutex:
            return set(self._held)


_registry = None
_registry_pid = None
_counter = itertools.count(1)


def registry():
    """This process's PortRegistry (a forked child gets its own: record locks are not inherited)."""
    global _registry, _registry_pid
    if _registry is None or _registry_pid != os.getpid():
        _registry, _registry_pid = PortRegistry(), os.getpid()
    return _registry


def free_port():
    """A held port (see the module doc); ``release_port`` it when done, or let the process end."""
    return registry().acquire()


def release_port(port):
    registry().release(port)


def mcast_group():
    """(group, port): a 228.x.y.z group from the worker id, pid and a counter, and a held UDP port."""
    n = next(_counter)
    digest = hashlib.sha256(("%s/%d/%d" % (worker_id(), os.getpid(), n)).encode()).digest()
    # 228.0.0.0/8 is administratively scoped; avoid x.y.z = 0 or 255 in the last byte
    group = "228.%d.%d.%d" % (digest[0], digest[1], 1 + digest[2] % 254)
    return group, free_port()
