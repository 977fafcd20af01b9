"""MessageDispatchInterceptor: makes ASYNCHRONOUS (8) sends return at once (Tomcat's namesake).

An async message is queued and sent down the stack by one of ``maxThreads`` worker greenlets; the
caller's optional ErrorHandler hears about completion or failure. The queue is bounded in bytes
(``maxQueueSize``): when a message does not fit, ``alwaysSend=true`` sends it synchronously on the
caller's greenlet, otherwise the send fails with "queue full". Other messages pass straight
through. The queue runs while the sender (SND_TX) runs. Ordering of async messages is not
guaranteed with more than one worker, as in Tomcat.
"""
import logging

import gevent.queue

from pycat.attrs import Attr
from pycat.errors import ChannelError
from pycat.tribes import channel as ch
from pycat.tribes.group.interceptor import ChannelInterceptor

log = logging.getLogger(__name__)
_ASYNCHRONOUS = ch.ASYNCHRONOUS


class MessageDispatchInterceptor(ChannelInterceptor):
    option_flag = Attr(int, ch.ASYNCHRONOUS, "fixed at 8 (asynchronous); other values are ignored with a warning")
    always_send = Attr(bool, True, "send synchronously when the queue is full (else raise)")
    max_queue_size = Attr(int, 64 * 1024 * 1024, "queued bytes at most")
    max_threads = Attr(int, 10, "worker greenlets")
    max_spare_threads = Attr(int, 2, "accepted for compatibility")
    keep_alive_time = Attr(int, 5000, "accepted for compatibility")
    use_deep_clone = Attr(bool, True, "copy the message before queueing it")

    def __init__(self):
        super().__init__()
        self.current_size = 0
        self._queue = None
        self.running = False

    def start_services(self, flags=ch.DEFAULT):
        if self.option_flag != ch.ASYNCHRONOUS:
            log.warning("MessageDispatchInterceptor optionFlag is fixed at 8; ignoring %d", self.option_flag)
            self.option_flag = ch.ASYNCHRONOUS
        if flags & ch.SND_TX:
            self.start()            # the workers serve the sender: they run while SND_TX does
        super().start_services(flags)

    def stop_services(self, flags=ch.DEFAULT):
        try:
            super().stop_services(flags)
        finally:
            if flags & ch.SND_TX:
                self.stop()

    def _start(self):
        # snapshot for the hot path (an Attr read is a descriptor call)
        self._limits = (self.max_queue_size, self.always_send, self.use_deep_clone)
        self._queue = gevent.queue.Queue()
        for _ in range(max(1, self.max_threads)):
            self.spawn(self._worker, self._queue)
        self.running = True

    def _stop(self):
        self.running = False        # the workers are killed once this returns
        self._queue = None
        self.current_size = 0

    def send_message(self, members, msg, payload):
        if not msg.options & _ASYNCHRONOUS or not self.running:
            return self.next.send_message(members, msg, payload)
        size = len(msg.message)
        max_size, always_send, deep_clone = self._limits
        if self.current_size + size > max_size:
            if always_send:
                return super().send_message(members, msg, payload)
            raise ChannelError("Unable to queue message, queue full (%d + %d > %d bytes)"
                               % (self.current_size, size, max_size),
                               {m: "queue full" for m in members})
        if deep_clone:
            msg = msg.clone()
        self.current_size += size
        self._queue.put((list(members), msg, payload, size))

    def _worker(self, queue):
        while True:
            members, msg, payload, size = queue.get()
            try:
                ChannelInterceptor.send_message(self, members, msg, payload)
            except Exception as exc:
                self._callback(payload, "handle_error", exc, msg.unique_id) or log.warning(
                    "async send of %s failed: %s", msg.unique_id.hex(), exc)
            else:
                self._callback(payload, "handle_completion", msg.unique_id)
            finally:
                self.current_size -= size

    @staticmethod
    def _callback(payload, name, *args):
        """Call the ErrorHandler's method if it has one; True when called. Its errors are logged."""
        func = getattr(payload, name, None)
        if func is None:
            return False
        try:
            func(*args)
        except Exception:
            log.exception("error handler %s failed", name)
        return True
