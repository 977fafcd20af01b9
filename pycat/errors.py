"""The few exception classes pycat raises; each means one thing. (BadRequest and IllegalStateError live
here, below the layers that raise and catch them: connector, core and webapp; see docs/design.md section 5.)"""

# the request attribute under which a servlet's (or a valve's) exception travels to the error page
# and the error report (Tomcat's RequestDispatcher.ERROR_EXCEPTION): one name, used by core and valves
EXCEPTION_ATTR = "pycat.error.exception"


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


class BadRequest(OSError):
    """The client sent a malformed request body (bad chunk framing, or it ended early).

    Tomcat's BadRequestException: an IOError to the servlet reading the body (it may catch it),
    and a 400 without a stack trace when it escapes the servlet. The connection is closed after
    the response, since the rest of the stream cannot be trusted to start a request.
    (pycat.connector.request re-exports it.)
    """


class IllegalStateError(RuntimeError):
    """Like Java's IllegalStateException: e.g. send_error after the response was committed.
    (pycat.connector.response re-exports it.)"""
