"""ErrorReportValve: an HTML page for 4xx/5xx responses that have no body (Tomcat's).

After the rest of the pipeline ran: if the response is not committed, was marked in error
(``send_error`` or an exception), its status is >= 400, nothing was written and no error page
was applied, render the page. ``showReport=false``
leaves out the message, description and stack trace; ``showServerInfo=false`` leaves out the
server name. Every piece of text from the request or the exception is HTML-escaped.
"""
import html
import http
import logging
import os
import traceback

import pycat
from pycat.attrs import Attr
from pycat.core.pipeline import Valve
from pycat.errors import EXCEPTION_ATTR

log = logging.getLogger(__name__)

DESCRIPTIONS = {
    400: "The server cannot or will not process the request due to something that is perceived "
         "to be a client error (e.g., malformed request syntax, invalid request message framing, "
         "or deceptive request routing).",
    401: "The request has not been applied because it lacks valid authentication credentials "
         "for the target resource.",
    403: "The server understood the request but refuses to authorize it.",
    404: "The origin server did not find a current representation for the target resource or is "
         "not willing to disclose that one exists.",
    405: "The method received in the request-line is known by the origin server but not "
         "supported by the target resource.",
    413: "The server is refusing to process a request because the request payload is larger "
         "than the server is willing or able to process.",
    416: "None of the ranges in the request's Range header field overlap the current extent of "
         "the selected resource.",
    431: "The server is unwilling to process the request because its header fields are too large.",
    500: "The server encountered an unexpected condition that prevented it from fulfilling the request.",
    501: "The server does not support the functionality required to fulfill the request.",
    503: "The server is currently unable to handle the request due to a temporary overload or "
         "scheduled maintenance, which will likely be alleviated after some delay.",
}

STYLE = ("body {font-family:Tahoma,Arial,sans-serif;} h1, h2, h3, b {color:white;"
         "background-color:#525D76;} h1 {font-size:22px;} h2 {font-size:16px;} h3 {font-size:14px;} "
         "p {font-size:12px;} a {color:black;} .line {height:1px;background-color:#525D76;border:none;}")


def reason(status):
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def render(status, message=None, exc=None, show_report=True, show_server_info=True):
    title = "HTTP Status %d – %s" % (status, html.escape(reason(status)))
    out = ['<!doctype html><html lang="en"><head><title>', title, "</title><style type=\"text/css\">",
           STYLE, "</style></head><body><h1>", title, "</h1>"]
    if show_report:
        out.append('<hr class="line" />')
        out.append("<p><b>Type</b> %s</p>" % ("Exception Report" if exc is not None else "Status Report"))
        if message:
            out.append("<p><b>Message</b> %s</p>" % html.escape(message))
        elif exc is not None and str(exc):
            out.append("<p><b>Message</b> %s</p>" % html.escape(str(exc)))
        if status in DESCRIPTIONS:
            out.append("<p><b>Description</b> %s</p>" % DESCRIPTIONS[status])
        if exc is not None:
            trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            out.append("<p><b>Exception</b></p><pre>%s</pre>" % html.escape(trace))
    if show_server_info:
        out.append('<hr class="line" /><h3>%s</h3>' % html.escape(pycat.SERVER_INFO))
    out.append("</body></html>")
    return "".join(out)


class ErrorReportValve(Valve):
    """Also Tomcat's per-status/per-exception pages: ``errorCode.404="conf/404.html"``,
    ``errorCode.0`` (any status), ``exceptionType.builtins.KeyError="..."``; the file (relative to
    CATALINA_BASE) is sent instead of the generated report."""

    show_report = Attr(bool, True, "Include message, description and stack trace")
    show_server_info = Attr(bool, True, "Include the server name and version")

    def __init__(self):
        super().__init__()
        self.error_files = {}        # "errorCode.404" / "exceptionType.x.Y" → path

    def set_property(self, name, value):
        if name.startswith(("errorCode.", "exceptionType.")):
            self.error_files[name] = value
            return True
        return False

    def _configured_file(self, status, exc):
        files = self.error_files
        if not files:
            return None
        path = None
        if exc is not None:
            for klass in type(exc).__mro__:
                path = files.get("exceptionType.%s.%s" % (klass.__module__, klass.__qualname__)) \
                    or files.get("exceptionType." + klass.__qualname__)
                if path:
                    break
        path = path or files.get("errorCode.%d" % status) or files.get("errorCode.0")
        if not path:
            return None
        if not os.path.isabs(path) and self.container is not None:
            path = os.path.join(self.container.catalina_base, path)
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except OSError as err:
            log.warning("ErrorReportValve: error page %s cannot be read: %s", path, err)
            return None

    def invoke(self, request, response):
        self.next.invoke(request, response)
        status = response.status
        # a success leaves at once: this check runs on every request
        if status < 400 or response.committed or response.error_reported:
            return
        exc = request.get_attribute(EXCEPTION_ATTR)
        # as Tomcat: only responses marked in error (send_error, an exception) get a report; an app
        # that just sets 404 and writes nothing gets an empty 404
        if response.content_written or not (response.is_error or exc is not None):
            return
        response.error_reported = True
        configured = self._configured_file(status, exc)
        if configured is not None:
            response.write_error_page(configured, "text/html;charset=utf-8")
            return
        page = render(status, response.error_message, exc, self.show_report, self.show_server_info)
        try:
            response.write_error_page(page.encode("utf-8"), "text/html;charset=utf-8")
        except Exception:
            log.exception("rendering the error page for %d failed", status)
