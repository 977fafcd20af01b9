"""The Channel API: send option bits, start flags and the listener protocols (Tomcat's Channel.java).

Send options are Tomcat's bits, so a ChannelData sent by pycat means the same thing to a Java peer.
``parse_send_options`` accepts what server.xml may hold: an int, a decimal string (``"6"``) or
comma-separated names (``"use_ack,sync"``, ``"async, multicast"``). ``options_to_string`` prints the
set bits from high to low joined by ``", "`` (72 -> ``"multicast, async"``), as Tomcat does.

Start flags select which parts of a channel start or stop: the receiver (SND_RX), the sender
(SND_TX), the membership listener (MBR_RX) and the membership broadcaster (MBR_TX).
"""
import uuid

from pycat.errors import ConfigError

SEND_OPTIONS_BYTE_MESSAGE = 0x0001
SEND_OPTIONS_USE_ACK = 0x0002
SEND_OPTIONS_SYNCHRONIZED_ACK = 0x0004
SEND_OPTIONS_ASYNCHRONOUS = 0x0008
SEND_OPTIONS_SECURE = 0x0010
SEND_OPTIONS_UDP = 0x0020
SEND_OPTIONS_MULTICAST = 0x0040
SEND_OPTIONS_DEFAULT = SEND_OPTIONS_USE_ACK

# short aliases used throughout pycat
BYTE_MESSAGE = SEND_OPTIONS_BYTE_MESSAGE
USE_ACK = SEND_OPTIONS_USE_ACK
SYNCHRONIZED_ACK = SEND_OPTIONS_SYNCHRONIZED_ACK
ASYNCHRONOUS = SEND_OPTIONS_ASYNCHRONOUS
SECURE = SEND_OPTIONS_SECURE
UDP = SEND_OPTIONS_UDP
MULTICAST = SEND_OPTIONS_MULTICAST

# name -> bit, in Tomcat's spelling; the first name of each bit is the one printed
_NAMES = [
    ("multicast", MULTICAST), ("udp", UDP), ("secure", SECURE),
    ("asynchronous", ASYNCHRONOUS), ("async", ASYNCHRONOUS),
    ("synchronized_ack", SYNCHRONIZED_ACK), ("sync", SYNCHRONIZED_ACK),
    ("use_ack", USE_ACK), ("byte_message", BYTE_MESSAGE), ("byte", BYTE_MESSAGE),
]
_BY_NAME = dict(_NAMES)
# the printed name of each bit (Tomcat prints the short forms)
_PRINTED = {MULTICAST: "multicast", UDP: "udp", SECURE: "secure", ASYNCHRONOUS: "async",
            SYNCHRONIZED_ACK: "sync", USE_ACK: "use_ack", BYTE_MESSAGE: "byte"}

# start/stop flags (Channel.SND_RX_SEQ ...)
SND_RX = 1
SND_TX = 2
MBR_RX = 4
MBR_TX = 8
DEFAULT = SND_RX | SND_TX | MBR_RX | MBR_TX


def parse_send_options(value):
    """int | "6" | "use_ack,sync" | "async, multicast" -> int. Unknown names raise ConfigError."""
    if isinstance(value, bool):
        raise ConfigError("send options must be an int or names, not %r" % value)
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        return int(text, 0) if text.lower().startswith("0x") else int(text)
    except ValueError:
        pass
    result = 0
    for part in text.split(","):
        name = part.strip().lower()
        if not name:
            continue
        if name not in _BY_NAME:
            raise ConfigError("unknown channel send option %r in %r (known: %s)"
                              % (part.strip(), value, ", ".join(sorted(_BY_NAME))))
        result |= _BY_NAME[name]
    return result


def options_to_string(options):
    """Set bits from high to low joined by ', ' (72 -> 'multicast, async'); unnamed bits as hex."""
    names = []
    for bit in range(31, -1, -1):
        mask = 1 << bit
        if options & mask:
            names.append(_PRINTED.get(mask, "0x%x" % mask))
    return ", ".join(names)


def new_unique_id():
    """16 random bytes (RFC 4122 v4 UUID), the id of one message as Tomcat's UUIDGenerator makes it."""
    return uuid.uuid4().bytes


class ChannelListener:
    """Protocol of a channel listener (duck-typed; subclassing is optional).

    ``accept(msg, sender)`` says whether this listener wants the message; then
    ``message_received(msg, sender)`` gets it. ``msg`` is bytes for BYTE_MESSAGE sends, else the
    decoded plain value; ``sender`` is the Member it came from. An exception raised here reaches a
    sync-ack sender as FAIL_ACK.
    """

    def accept(self, msg, sender):
        return True

    def message_received(self, msg, sender):
        raise NotImplementedError


class MembershipListener:
    """Protocol of a membership listener: called when a member joins or leaves the group."""

    def member_added(self, member):
        pass

    def member_disappeared(self, member):
        pass


class ErrorHandler:
    """Completion callbacks of an asynchronous send (Tomcat's ErrorHandler)."""

    def handle_error(self, error, unique_id):
        pass

    def handle_completion(self, unique_id):
        pass
