"""Process control for ``pycat start`` / ``pycat stop``: node paths, the pid file, the shutdown port.

Defaults (documented in the README):
  CATALINA_HOME  the install (the folder holding the pycat package and bin/)
  CATALINA_BASE  $CATALINA_BASE, else the current directory if it has conf/server.xml, else HOME
  CATALINA_PID   $CATALINA_BASE/logs/catalina.pid (Tomcat writes none unless CATALINA_PID is
                 set; pycat always writes one so ``pycat stop`` can fall back to the process)
  CATALINA_OUT   $CATALINA_BASE/logs/catalina.out
"""
import errno
import os
import signal
import socket
import time

from lxml import etree

import pycat
from pycat import xmlsafe
from pycat.errors import ConfigError
from pycat.fileutil import atomic_write
from pycat.startup.properties import substitute

INSTALL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(pycat.__file__)))


class Node:
    """Where a node's files are, from options, then environment, then defaults."""

    def __init__(self, base=None, home=None, config=None, pid_file=None, out_file=None, env=None):
        env = os.environ if env is None else env
        self.home = os.path.abspath(home or env.get("CATALINA_HOME") or INSTALL_DIR)
        base = base or env.get("CATALINA_BASE")
        if not base:
            if env.get("CATALINA_HOME"):
                base = self.home  # Tomcat: CATALINA_BASE defaults to CATALINA_HOME
            elif os.path.isfile(os.path.join(os.getcwd(), "conf", "server.xml")):
                base = os.getcwd()
            else:
                base = self.home
        self.base = os.path.abspath(base)
        self.config = self._resolve_config(config)
        self.pid_file = os.path.abspath(pid_file or env.get("CATALINA_PID")
                                        or os.path.join(self.base, "logs", "catalina.pid"))
        self.out_file = os.path.abspath(out_file or env.get("CATALINA_OUT")
                                        or os.path.join(self.base, "logs", "catalina.out"))

    def _resolve_config(self, config):
        if not config:
            return os.path.join(self.base, "conf", "server.xml")
        if os.path.isabs(config) or os.path.exists(config):
            return os.path.abspath(config)
        # Tomcat resolves a relative -config against CATALINA_BASE
        return os.path.join(self.base, config)

    def env(self):
        return {"CATALINA_BASE": self.base, "CATALINA_HOME": self.home, "CATALINA_PID": self.pid_file,
                "CATALINA_OUT": self.out_file}


# -- pid file ---------------------------------------------------------------------------------
def read_pid(pid_file):
    try:
        with open(pid_file) as fh:
            return int(fh.read().strip() or "0") or None
    except (OSError, ValueError):
        return None


def write_pid(pid_file, pid):
    os.makedirs(os.path.dirname(pid_file), exist_ok=True)
    with atomic_write(pid_file, "w") as fh:
        fh.write("%d\n" % pid)


def remove_pid(pid_file, only_if=None):
    if only_if is not None and read_pid(pid_file) != only_if:
        return
    try:
        os.unlink(pid_file)
    except FileNotFoundError:
        pass


def is_alive(pid):
    """True if the process exists and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def wait_gone(pid, timeout, poll=0.05):
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


# -- shutdown port ------------------------------------------------------------------------------
def shutdown_settings(config, properties):
    """(port, address, command) from the <Server> element."""
    try:
        # the same hardened parse as `pycat run` (xmlsafe: no entities, DTDs or network)
        element = xmlsafe.parse(config, remove_comments=True)
    except etree.XMLSyntaxError as exc:
        raise ConfigError("malformed XML: %s" % exc, file=config) from None
    except OSError as exc:
        raise ConfigError("cannot read %s" % exc, file=config) from None
    attrs = {k: substitute(v, properties) for k, v in element.attrib.items()}
    try:
        port = int(attrs.get("port", "8005"))
        offset = int(attrs.get("portOffset", "0"))
    except ValueError:
        raise ConfigError("Server port %r is not a number" % attrs.get("port"),
                          file=config, line=element.sourceline, element="Server") from None
    if port > 0:
        port += offset
    return port, attrs.get("address", "localhost"), attrs.get("shutdown", "SHUTDOWN")


def send_shutdown(port, address, command, timeout=5.0):
    """Send the shutdown command; raises OSError (ConnectionRefusedError if nothing listens)."""
    with socket.create_connection((address or "localhost", port), timeout=timeout) as sock:
        sock.sendall(command.encode("utf-8"))
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise


def terminate(pid, sig=signal.SIGTERM):
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False
