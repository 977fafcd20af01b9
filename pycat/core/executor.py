"""Executor: a named, shared worker-pool size (Tomcat's StandardThreadExecutor).

Connectors naming it in ``executor="..."`` share its ``workers`` semaphore of ``maxThreads``
permits: together they process at most that many requests at once, as Tomcat's connectors
share the executor's threads (see connector.py). Greenlets are created on demand, so the
thread-tuning attributes are kept for compatibility only.
"""
import gevent.lock

from pycat.attrs import Attr
from pycat.lifecycle import Lifecycle


class Executor(Lifecycle):
    name = Attr(str, None, "Name connectors refer to")
    name_prefix = Attr(str, "tomcat-exec-", "Prefix of worker names (greenlets have no names; kept)")
    max_threads = Attr(int, 200, "Concurrent requests served by connectors using this executor")
    min_spare_threads = Attr(int, 25, "Kept for compatibility (greenlets are created on demand)")
    max_idle_time = Attr(int, 60000, "Kept for compatibility")
    max_queue_size = Attr(int, 2147483647, "Kept for compatibility")
    prestartmin_spare_threads = Attr(bool, False, "Kept for compatibility", xml="prestartminSpareThreads")
    daemon = Attr(bool, True, "Kept for compatibility")
    thread_priority = Attr(int, 5, "Kept for compatibility")
    thread_renewal_delay = Attr(int, 1000, "Kept for compatibility")

    def __init__(self):
        super().__init__()
        self.workers = None

    def pool_size(self):
        return max(1, self.max_threads)

    def _start(self):
        if self.workers is None:
            self.workers = gevent.lock.BoundedSemaphore(self.pool_size())
