"""Why a send to one member failed (the values of ChannelError.faulty)."""
from pycat.errors import ChannelError


class RemoteProcessError(ChannelError):
    """The receiver answered FAIL_ACK: its listeners raised while processing the message."""


class SendTimeout(ChannelError):
    """No ACK within the send timeout."""
