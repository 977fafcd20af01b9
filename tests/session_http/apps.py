"""Web apps for the session tests, built from the examples' session modules."""
from http_client import example_source

LISTENER = """  <listener><listener-class>session_servlets:SessionEventRecorder</listener-class></listener>
"""

SERVLETS = """  <servlet><servlet-name>session</servlet-name><servlet-class>session_servlets:SessionServlet</servlet-class></servlet>
  <servlet-mapping><servlet-name>session</servlet-name><url-pattern>/session</url-pattern></servlet-mapping>
  <servlet><servlet-name>events</servlet-name><servlet-class>session_servlets:SessionEventsServlet</servlet-class></servlet>
  <servlet-mapping><servlet-name>events</servlet-name><url-pattern>/session-events</url-pattern></servlet-mapping>
"""


def web_xml(body="", session_config="", distributable=False, listener=True):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" '
            'version="6.0">\n%s%s%s%s%s</web-app>\n'
            % ("  <distributable/>\n" if distributable else "", LISTENER if listener else "", SERVLETS, body,
               "  <session-config>%s</session-config>\n" % session_config if session_config else ""))


def session_app(**kw):
    """Files of an app with the session toolbox servlet at /session and its listener."""
    return {"WEB-INF/web.xml": web_xml(**kw),
            "WEB-INF/classes/session_servlets.py": example_source("session_servlets.py")}


def wsgi_app(module, callable_name):
    """Files of an app whose whole URL space is one WSGI callable from the examples."""
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<web-app>\n'
           '  <servlet><servlet-name>app</servlet-name><servlet-class>%s:%s</servlet-class></servlet>\n'
           '  <servlet-mapping><servlet-name>app</servlet-name><url-pattern>/*</url-pattern></servlet-mapping>\n'
           '</web-app>\n' % (module, callable_name))
    return {"WEB-INF/web.xml": xml,
            "WEB-INF/classes/%s.py" % module: example_source(module + ".py")}
