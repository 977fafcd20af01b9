"""Session examples: a counter, and a small toolbox of session operations (also used by the
tests in tests/session_http). Every answer is plain text, ``key=value`` pairs.

GET /examples/session?op=...
  none         answer without touching the session (a baseline)
  get          the session if there is one (no creation): "none" or "id=... new=... count=..."
  inc          create if needed and count the visits
  set          set attribute ``name`` to ``value``
  remove       remove attribute ``name``
  invalidate   invalidate the session
  change       change_session_id() (what a login does against session fixation); 409 without a session
  timeout      session.max_inactive_interval = ``seconds``
  url          response.encode_url of a link back here (``;jsessionid=`` when cookies cannot carry it)
  unpicklable  store a generator (cannot be serialised: a distributable app answers 500 naming it)
"""
import collections

from pycat.webapp.servlet import HttpServlet

#: what SessionEventRecorder heard, newest last (bounded: an example must not grow forever)
EVENTS = collections.deque(maxlen=1000)


class SessionEventRecorder:
    """A web.xml <listener>: hears every session event kind."""

    def session_created(self, event):
        EVENTS.append("created %s" % event.session.id)

    def session_destroyed(self, event):
        EVENTS.append("destroyed %s" % event.session.id)

    def attribute_added(self, event):
        EVENTS.append("added %s %s" % (event.name, event.session.id))

    def attribute_replaced(self, event):
        EVENTS.append("replaced %s %s" % (event.name, event.session.id))

    def attribute_removed(self, event):
        EVENTS.append("removed %s %s" % (event.name, event.session.id))

    def session_id_changed(self, event, old_id):
        EVENTS.append("changed %s %s" % (old_id, event.session.id))


def describe(session):
    if session is None:
        return "none"
    return "id=%s new=%s count=%s" % (session.id, session.is_new, session.get("count", 0))


class SessionServlet(HttpServlet):
    def do_get(self, request, response):
        op = request.get_parameter("op", "get")
        response.content_type = "text/plain"
        if op == "none":
            out = "ok"
        elif op == "get":
            out = describe(request.get_session(False))
        elif op == "inc":
            session = request.session
            session["count"] = session.get("count", 0) + 1
            out = describe(session)
        elif op == "set":
            session = request.session
            session[request.get_parameter("name")] = request.get_parameter("value")
            out = describe(session)
        elif op == "remove":
            session = request.session
            session.pop(request.get_parameter("name"), None)
            out = describe(session)
        elif op == "invalidate":
            session = request.get_session(False)
            if session is not None:
                session.invalidate()
            out = "invalidated"
        elif op == "change":
            old = request.get_session(False)
            if old is None:
                # change_session_id() needs a session; say so instead of a 500 from the example
                response.send_error(409, "no session to change: open ?op=inc first")
                return
            out = "old=%s new=%s" % (old.id, request.change_session_id())
        elif op == "timeout":
            session = request.session
            session.max_inactive_interval = int(request.get_parameter("seconds", "1"))
            out = describe(session)
        elif op == "url":
            request.session
            out = response.encode_url(request.context_path + "/session?op=inc")
        elif op == "unpicklable":
            request.session["cursor"] = (n for n in range(3))
            out = "stored"
        else:
            response.send_error(400, "unknown op %s" % op)
            return
        response.write(out + "\n")


class SessionEventsServlet(HttpServlet):
    def do_get(self, request, response):
        response.content_type = "text/plain"
        response.write("".join(e + "\n" for e in EVENTS))
