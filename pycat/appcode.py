"""The boundary around application code: an app's ``sys.exit()`` (or any BaseException that is not an
Exception) must not end the node. Every point where the container calls app code (the app loader's
imports, servlets, filters, listeners, session listeners) converts it to ``AppAbort``.

Layer 1 (docs/design.md section 5): ``session`` (session listeners are app code) and ``webapp`` both use it,
and session sits below webapp. ``pycat.webapp.loader`` re-exports these names.
"""
import greenlet


class AppAbort(RuntimeError):
    """App code raised a BaseException that is not an Exception: ``sys.exit()`` (SystemExit),
    KeyboardInterrupt, a ``gevent.Timeout`` the app started and did not catch, a class of its
    own deriving from BaseException. Left alone, gevent re-raises SystemExit/KeyboardInterrupt
    in the main greenlet, i.e. one app's import or request would stop the whole node. At every
    point where the container calls app code it becomes this ordinary exception instead, so it
    is handled as any other failure there: a failed deploy, a failed Context start, a 500.
    ``original`` is what the app raised; the traceback is the app's."""

    def __init__(self, original, doing):
        self.original = original
        if isinstance(original, SystemExit):
            what = "called sys.exit(%r)" % (original.code,)
        else:
            text = str(original)
            what = "raised %s%s" % (type(original).__name__, ": " + text if text else "")
        super().__init__("application code %s while %s" % (what, doing))


def is_abort(exc):
    """Must ``exc``, raised by app code, become an AppAbort? Everything that is not an Exception,
    except GreenletExit: that is a kill (the server's stop ends connection and background
    greenlets with it) and must reach the top of its greenlet to end it. A gevent.Timeout *is*
    converted: every pycat frame that calls app code is outside any Timeout of ours, so one that
    comes out of app code is the app's own (``with gevent.Timeout(5): ...`` raises it)."""
    return not isinstance(exc, (Exception, greenlet.GreenletExit))


def abort(exc, doing):
    """The AppAbort to raise for ``exc`` (caught where app code was called), with the app's traceback."""
    return AppAbort(exc, doing).with_traceback(exc.__traceback__)


class app_code:
    """``with app_code("running %s", name): <call into the app>`` -- see AppAbort. The message
    is formatted only when something is converted. Hot paths (a request) use an inline
    ``except BaseException`` with is_abort()/abort() instead."""

    __slots__ = ("doing", "args")

    def __init__(self, doing, *args):
        self.doing, self.args = doing, args

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is not None and is_abort(exc):
            raise abort(exc, self.doing % self.args if self.args else self.doing) from None
        return False
