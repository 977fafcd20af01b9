"""ThroughputInterceptor: counts traffic and logs throughput every ``interval`` messages.

Sent bytes are counted per destination ("total") and once ("application"); the send time only
accumulates while no other send is in flight, as in Tomcat. Received messages are counted too.
"""
import logging
import time

from pycat.attrs import Attr
from pycat.tribes.group.interceptor import ChannelInterceptor

log = logging.getLogger(__name__)
_MB = 1024.0 * 1024.0


class ThroughputInterceptor(ChannelInterceptor):
    interval = Attr(int, 10000, "log a report every this many messages")

    def __init__(self):
        super().__init__()
        self.tx_count = 0
        self.tx_deliveries = 0        # messages times their destinations (tx_count counts each send once)
        self.rx_count = 0
        self.tx_errors = 0
        self.mb_tx = 0.0
        self.mb_app_tx = 0.0
        self.mb_rx = 0.0
        self.time_tx = 0.0
        self.rx_start = None
        self._in_flight = 0
        self._last_cnt = 1

    def send_message(self, members, msg, payload):
        self._in_flight += 1
        start = time.monotonic()
        try:
            super().send_message(members, msg, payload)
        except Exception:
            self.tx_errors += 1
            raise
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self.time_tx += time.monotonic() - start
            size = len(msg.message)
            self.mb_tx += size * len(members) / _MB
            self.mb_app_tx += size / _MB
            self.tx_count += 1
            self.tx_deliveries += len(members)
        if self.interval > 0 and self.tx_count // self.interval >= self._last_cnt:
            self._last_cnt += 1
            self.report()

    def message_received(self, msg):
        if self.rx_start is None:
            self.rx_start = time.monotonic()
        self.mb_rx += len(msg.message) / _MB
        self.rx_count += 1
        if self.interval > 0 and self.rx_count % self.interval == 0:
            self.report()
        super().message_received(msg)

    def report(self):
        elapsed_rx = time.monotonic() - self.rx_start if self.rx_start else 0.0
        log.info("ThroughputInterceptor Report[\n\tTx Msg:%d messages\n\tSent:%.2f MiB (total)\n"
                 "\tSent:%.2f MiB (application)\n\tTime:%.2f seconds\n\tTx Speed:%.2f MiB/sec (total)\n"
                 "\tTx Speed:%.2f MiB/sec (application)\n\tError Msg:%d\n\tRx Msg:%d messages\n"
                 "\tRx Speed:%.2f MiB/sec (since 1st msg)\n\tReceived:%.2f MiB]",
                 self.tx_count, self.mb_tx, self.mb_app_tx, self.time_tx,
                 self.mb_tx / self.time_tx if self.time_tx else 0.0,
                 self.mb_app_tx / self.time_tx if self.time_tx else 0.0,
                 self.tx_errors, self.rx_count,
                 self.mb_rx / elapsed_rx if elapsed_rx else 0.0, self.mb_rx)
