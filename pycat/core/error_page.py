"""<error-page> handling for a Context (Tomcat's StandardHostValve.status/throwable).

After the Context pipeline ran, an exception (kept as a request attribute by the Wrapper) is
matched against exception-type pages along its class's MRO, then the status against error-code
pages (then a default page without code or type). The page is served by an ERROR dispatch to
its location inside the same Context, keeping the error status; the error attributes
(``javax.servlet.error.*`` names, which servlets porting from Java expect) are set first.
"""
import logging

from pycat.errors import EXCEPTION_ATTR

log = logging.getLogger(__name__)


def apply_error_page(context, request, response):
    if response.committed:
        return False
    exc = request.get_attribute(EXCEPTION_ATTR)
    location = None
    if exc is not None:
        location = context.find_error_page_for_exception(exc)
    if location is None and response.status >= 400:
        location = context.find_error_page_for_status(response.status)
    if location is None:
        return False
    if request.get_attribute("javax.servlet.error.request_uri") is not None:
        return False  # already in an error dispatch: never loop
    status = response.status
    request.set_attribute("javax.servlet.error.status_code", status)
    request.set_attribute("javax.servlet.error.message", response.error_message or "")
    request.set_attribute("javax.servlet.error.exception", exc)
    request.set_attribute("javax.servlet.error.exception_type", type(exc) if exc is not None else None)
    request.set_attribute("javax.servlet.error.request_uri", request.request_uri)
    request.set_attribute("javax.servlet.error.servlet_name",
                          request.wrapper.name if request.wrapper is not None else None)
    try:
        context.dispatch(request, response, location, "ERROR")
    except Exception:
        log.exception("Context [%s]: error page %s failed", context.path or "/", location)
        return False
    response.status = status
    if not response.content_written:
        return False        # the page produced nothing (missing file): the ErrorReportValve answers
    response.error_reported = True
    return True
