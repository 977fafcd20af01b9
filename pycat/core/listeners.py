"""Server-level listeners: VersionLoggerListener and the no-op stand-in for JVM-only ones."""
import logging
import os
import platform
import sys

import pycat
from pycat.attrs import Attr

log = logging.getLogger(__name__)


class VersionLoggerListener:
    """Logs server version, Python and OS details before the server initialises."""

    log_args = Attr(bool, True, "Log the command-line arguments")
    log_env = Attr(bool, False, "Log the environment")
    log_props = Attr(bool, False, "Log CATALINA_* settings")

    def lifecycle_event(self, event):
        if event.type != "before_init":
            return
        log.info("Server version name:   %s", pycat.SERVER_INFO)
        log.info("OS Name / Version:     %s %s", platform.system(), platform.release())
        log.info("Architecture:          %s", platform.machine())
        log.info("Python:                %s (%s)", platform.python_version(), sys.executable)
        log.info("CATALINA_BASE:         %s", getattr(event.source, "catalina_base", None))
        log.info("CATALINA_HOME:         %s", getattr(event.source, "catalina_home", None))
        if self.log_args:
            log.info("Command line arguments: %s", " ".join(sys.argv[1:]))
        if self.log_env:
            for key in sorted(os.environ):
                log.info("Environment variable:  %s = %s", key, os.environ[key])
        if self.log_props:
            for key in sorted(k for k in os.environ if k.startswith("CATALINA")):
                log.info("Property:              %s = %s", key, os.environ[key])


class NoopListener:
    """Stands in for Tomcat listeners with no meaning in Python; accepts and keeps any attribute."""

    def __init__(self):
        self.properties = {}

    def set_property(self, name, value):
        self.properties[name] = value
        return True

    def lifecycle_event(self, event):
        pass
