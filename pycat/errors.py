"""The few exception classes pycat raises; each means one thing."""


class PycatError(Exception):
    """Base of every error pycat raises on purpose."""


class ConfigError(PycatError):
    """server.xml (or another descriptor) is wrong. The message names file, line and element."""

    def __init__(self, message, *, file=None, line=None, element=None):
        self.file, self.line, self.element = file, line, element
        where = []
        if file:
            where.append(str(file) + (":%s" % line if line else ""))
        elif line:
            where.append("line %s" % line)
        if element:
            where.append("<%s>" % element)
        super().__init__("%s: %s" % (" ".join(where), message) if where else message)


class LifecycleError(PycatError):
    """A component could not make a lifecycle transition (bad state, or its start failed)."""


class DeployError(PycatError):
    """A web application could not be deployed; the previous version keeps serving."""


class ChannelError(PycatError):
    """A cluster channel operation failed. `faulty` maps each failed member to its reason."""

    def __init__(self, message, faulty=None):
        super().__init__(message)
        self.faulty = dict(faulty or {})


class ProtocolError(PycatError):
    """Bytes on a wire did not follow the format; the frame or datagram is dropped."""
