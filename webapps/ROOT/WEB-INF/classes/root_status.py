"""A tiny status page: which server, which host and contexts answer this request."""
import html
import os
import time

import pycat
from pycat.webapp.servlet import HttpServlet

STARTED = time.time()


class StatusServlet(HttpServlet):
    def do_get(self, request, response):
        host = request.host
        contexts = sorted((c.path or "/") for c in host.find_children()) if host is not None else []
        rows = [
            ("Server", pycat.SERVER_INFO),
            ("Process id", os.getpid()),
            ("Uptime (s)", int(time.time() - STARTED)),
            ("Host", host.name if host is not None else "-"),
            ("Contexts", ", ".join(contexts)),
            ("Your address", request.remote_addr),
            ("Scheme", request.scheme),
        ]
        response.content_type = "text/html"
        response.write("<!doctype html><html><head><title>pycat status</title></head><body>"
                       "<h1>pycat status</h1><table>")
        for name, value in rows:
            response.write("<tr><th align=left>%s</th><td>%s</td></tr>"
                           % (html.escape(name), html.escape(str(value))))
        response.write("</table></body></html>")
