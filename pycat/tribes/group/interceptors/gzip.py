"""GzipInterceptor: compress message payloads (Tomcat's namesake).

A message of at least ``compressionMinSize`` bytes is replaced by its gzip stream and marked
with the option bit ``optionFlag`` (0x100); the receiver inflates marked messages and clears the
bit. Inflation is bounded (MAX_INFLATED) so a gzip bomb cannot exhaust memory.
"""
import gzip as gziplib
import logging
import zlib

from pycat.attrs import Attr
from pycat.tribes.group.interceptor import ChannelInterceptor

log = logging.getLogger(__name__)
DEFAULT_OPTION_COMPRESSION_ENABLE = 0x0100
MAX_INFLATED = 256 * 1024 * 1024


def compress(data):
    return gziplib.compress(data, compresslevel=6)


def decompress(data, limit=MAX_INFLATED):
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(data, limit)
    if inflater.unconsumed_tail:
        raise ValueError("inflated message exceeds %d bytes" % limit)
    return out + inflater.flush()


class GzipInterceptor(ChannelInterceptor):
    option_flag = Attr(int, DEFAULT_OPTION_COMPRESSION_ENABLE, "option bit marking compressed messages")
    compression_min_size = Attr(int, 0, "compress only payloads at least this large")
    stats_enabled = Attr(bool, False, "log compression statistics")
    interval = Attr(int, 0, "log statistics every this many messages")

    def __init__(self):
        super().__init__()
        self.count = self.size_in = self.size_out = 0

    def send_message(self, members, msg, payload):
        if len(msg.message) >= self.compression_min_size:
            before = len(msg.message)
            msg.message = compress(msg.message)
            msg.options |= self.option_flag
            if self.stats_enabled:
                self.count += 1
                self.size_in += before
                self.size_out += len(msg.message)
                if self.interval and self.count % self.interval == 0:
                    log.info("gzip: %d messages, %d -> %d bytes", self.count, self.size_in, self.size_out)
        super().send_message(members, msg, payload)

    def message_received(self, msg):
        if msg.options & self.option_flag:
            try:
                msg.message = decompress(msg.message)
            except (OSError, ValueError, zlib.error, EOFError) as exc:
                log.warning("dropping message %s from %s: cannot inflate: %s",
                            msg.unique_id.hex(), getattr(msg.address, "name", None), exc)
                return
            msg.options &= ~self.option_flag
        super().message_received(msg)
