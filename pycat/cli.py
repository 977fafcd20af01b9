"""The ``pycat`` command: run / start / stop / configtest / version (Tomcat's catalina.sh verbs),
and deploy / undeploy / list / farm / cluster status against a running node.

Options and environment follow Tomcat: CATALINA_BASE, CATALINA_HOME, CATALINA_PID, CATALINA_OUT,
``-Dname=value`` (repeatable; -D entries of JAVA_OPTS and CATALINA_OPTS are honoured too, the
command line wins) and ``--config`` (Tomcat's ``-config``). Defaults: pycat/startup/control.py.
"""
import os
import platform
import subprocess
import sys
import time

import click

import pycat


def _defines(values):
    from pycat.startup.properties import defines_from_opts, parse_define
    found = defines_from_opts(os.environ.get("JAVA_OPTS")) + defines_from_opts(os.environ.get("CATALINA_OPTS"))
    return found + [parse_define(v) for v in values]


def node_options(func):
    func = click.option("-D", "defines", multiple=True, metavar="NAME=VALUE",
                        help="Property for ${NAME} in server.xml (repeatable).")(func)
    func = click.option("--config", "-config", "config", metavar="FILE",
                        help="server.xml to use [default: $CATALINA_BASE/conf/server.xml].")(func)
    func = click.option("--home", metavar="DIR", help="CATALINA_HOME [env CATALINA_HOME; default: the install].")(func)
    func = click.option("--base", metavar="DIR", help="CATALINA_BASE [env CATALINA_BASE; default: "
                        "the current directory if it has conf/server.xml, else CATALINA_HOME].")(func)
    return func


def _node(base, home, config):
    from pycat.startup.control import Node
    return Node(base=base, home=home, config=config)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """pycat: Tomcat's container model for Python web apps."""


@main.command()
@node_options
def run(base, home, config, defines):
    """Run in the foreground (Ctrl-C or SIGTERM stops it cleanly)."""
    # cooperative sockets everywhere (the apps' libraries included), before the server is imported
    from gevent import monkey
    monkey.patch_all()
    from pycat.startup.catalina import Catalina, configure_logging
    from pycat.startup.control import remove_pid

    node = _node(base, home, config)
    configure_logging(node.base, node.home)
    # relative paths in apps and valves resolve against the node, like Tomcat's catalina.base
    os.chdir(node.base)
    catalina = Catalina(node.base, node.home, _defines(defines))
    try:
        code = catalina.run(node.config)
    finally:
        # started by `pycat start`: the pid file is ours to remove when we end
        remove_pid(node.pid_file, only_if=os.getpid())
    sys.exit(code)


@main.command()
@node_options
@click.option("--wait", type=float, default=0.0, metavar="SECONDS",
              help="Wait up to SECONDS for 'Server startup' in CATALINA_OUT (fail if the process dies).")
def start(base, home, config, defines, wait):
    """Start in the background (pid file CATALINA_PID, output CATALINA_OUT)."""
    from pycat.startup.control import is_alive, read_pid, remove_pid, write_pid

    node = _node(base, home, config)
    pid = read_pid(node.pid_file)
    if pid and is_alive(pid):
        raise click.ClickException("pycat appears to be running with PID %d (pid file %s); start aborted"
                                   % (pid, node.pid_file))
    if pid:
        click.echo("Removing stale pid file %s" % node.pid_file)
        remove_pid(node.pid_file)
    os.makedirs(os.path.dirname(node.out_file), exist_ok=True)
    os.makedirs(os.path.join(node.base, "logs"), exist_ok=True)
    cmd = [sys.executable, "-m", "pycat", "run", "--base", node.base, "--home", node.home, "--config", node.config]
    cmd += ["-D%s=%s" % (name, value) for name, value in _defines(defines)]
    env = dict(os.environ, **node.env())
    env.pop("JAVA_OPTS", None), env.pop("CATALINA_OPTS", None)   # already folded into the -D list
    with open(node.out_file, "ab") as out:
        offset = out.tell()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=node.base, start_new_session=True, close_fds=True)
    write_pid(node.pid_file, proc.pid)
    click.echo("pycat started (pid %d); output in %s" % (proc.pid, node.out_file))
    if wait > 0:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                remove_pid(node.pid_file, only_if=proc.pid)
                raise click.ClickException("pycat exited with code %d during startup:\n%s"
                                           % (proc.returncode, _tail(node.out_file, offset)))
            if "Server startup in" in _tail(node.out_file, offset, lines=None):
                return
            time.sleep(0.05)
        raise click.ClickException("pycat did not report startup within %.1fs; see %s" % (wait, node.out_file))


def _tail(path, offset, lines=20):
    with open(path, "rb") as fh:
        fh.seek(offset)
        text = fh.read().decode("utf-8", "replace")
    return text if lines is None else "\n".join(text.splitlines()[-lines:])


@main.command()
@node_options
@click.argument("timeout", type=float, default=5.0, required=False)
@click.option("--force", "-force", is_flag=True, help="SIGKILL the process if it is still running after TIMEOUT.")
def stop(base, home, config, defines, timeout, force):
    """Stop: the shutdown port first, then the pid (wait TIMEOUT seconds, default 5)."""
    import signal

    from pycat.errors import ConfigError
    from pycat.startup.catalina import Catalina
    from pycat.startup import control

    node = _node(base, home, config)
    pid = control.read_pid(node.pid_file)
    if pid and not control.is_alive(pid):
        click.echo("Removing stale pid file %s (process %d is gone)" % (node.pid_file, pid))
        control.remove_pid(node.pid_file)
        pid = None
    props = Catalina(node.base, node.home, _defines(defines)).load_properties()
    try:
        port, address, command = control.shutdown_settings(node.config, props)
    except ConfigError as exc:
        if not pid:
            raise click.ClickException(str(exc))
        click.echo("%s; stopping pid %d by signal" % (exc, pid), err=True)
        port = -1
    sent = False
    if port > 0:
        try:
            control.send_shutdown(port, address, command)
            sent = True
        except OSError as exc:
            click.echo("Could not contact %s:%d (%s)." % (address, port, exc.strerror or exc), err=True)
            if not pid:
                raise click.ClickException("pycat is not running? (no pid file %s)" % node.pid_file)
    if not sent:
        if not pid:
            raise click.ClickException("No shutdown port configured and no pid file %s; shut the server "
                                       "down with an OS signal" % node.pid_file)
        click.echo("Sending SIGTERM to pid %d" % pid)
        control.terminate(pid)
    if not pid:
        click.echo("Shutdown command sent to %s:%d" % (address, port))
        return
    if control.wait_gone(pid, timeout):
        control.remove_pid(node.pid_file, only_if=pid)
        click.echo("pycat stopped (pid %d)" % pid)
        return
    if not force:
        raise click.ClickException("pycat (pid %d) is still running after %.0fs; use -force to kill it"
                                   % (pid, timeout))
    click.echo("Killing pycat with pid %d" % pid)
    control.terminate(pid, signal.SIGKILL)
    control.wait_gone(pid, 5.0)
    control.remove_pid(node.pid_file)
    click.echo("pycat process has been killed")


@main.command()
@node_options
@click.option("--strict", is_flag=True, help="Unknown attributes and elements are errors, not warnings.")
@click.option("-v", "--verbose", is_flag=True, help="Show the info log while loading.")
@click.option("--describe", is_flag=True, help="Also print, for every element of the configuration, its "
              "class and the attributes that class declares (XML name, type, default, meaning).")
def configtest(base, home, config, defines, strict, verbose, describe):
    """Load the configuration without starting it; exit 0 if it is valid."""
    import logging

    from pycat.errors import ConfigError
    from pycat.startup.catalina import Catalina

    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR,
                        format="%(levelname)s [%(name)s] %(message)s")
    node = _node(base, home, config)
    catalina = Catalina(node.base, node.home, _defines(defines))
    try:
        catalina.load(node.config, strict=strict)
    except ConfigError as exc:
        click.echo("Configuration error: %s" % exc, err=True)
        sys.exit(1)
    for warning in catalina.warnings:
        click.echo("WARNING %s" % warning, err=True)
    if describe:
        for line in describe_elements(catalina.elements):
            click.echo(line)
    click.echo("Configuration OK: %s (%d warning%s)" % (node.config, len(catalina.warnings),
                                                       "" if len(catalina.warnings) == 1 else "s"))


def describe_elements(elements):
    """Lines documenting each (path, line, object) the configuration created: the element, its
    line and class, then one row per declared attribute (pycat.attrs.describe), in the same
    order and with the same names the digester uses."""
    from pycat import attrs

    out = []
    for path, line, obj in elements:
        cls = type(obj)
        out.append("<%s> line %s: %s.%s" % (path, line, cls.__module__, cls.__qualname__))
        rows = attrs.describe(cls)
        if not rows:
            generic = callable(getattr(obj, "set_property", None))
            out.append("    (no declared attributes%s)" % ("; takes any attribute as a property" if generic else ""))
        for row in rows:
            doc = row.doc + (" (also: %s)" % ", ".join(row.aliases) if row.aliases else "")
            out.append("    %-28s %-10s %-14s %s" % (row.xml_name, row.type, _default_text(row.default), doc))
    return out


def _default_text(value):
    """A default as it would be written in server.xml."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or '""'
    if isinstance(value, bytes):
        return value.decode("latin-1") or '""'
    return str(value) if value != "" else '""'


@main.command()
@node_options
def version(base, home, config, defines):
    """Print version information (Tomcat's version.sh)."""
    import gevent

    node = _node(base, home, config)
    rows = [
        ("Using CATALINA_BASE", node.base),
        ("Using CATALINA_HOME", node.home),
        ("Server version", pycat.SERVER_INFO),
        ("Server number", pycat.__version__),
        ("OS Name", platform.system()),
        ("OS Version", platform.release()),
        ("Architecture", platform.machine()),
        ("Python version", "%s (%s)" % (platform.python_version(), sys.executable)),
        ("gevent version", gevent.__version__),
    ]
    for key, value in rows:
        click.echo("%-20s %s" % (key + ":", value))


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", metavar="FILE", help="WAR to write [default: <folder name>.war next to FOLDER].")
def war(folder, output):
    """Build a .war from an application folder (WEB-INF/web.xml, WEB-INF/classes, ...)."""
    from pycat.errors import DeployError
    from pycat.webapp.war import build_war

    folder = os.path.abspath(folder)
    output = output or folder.rstrip(os.sep) + ".war"
    try:
        count = build_war(folder, output)
    except DeployError as exc:
        raise click.ClickException(str(exc))
    click.echo("Wrote %s (%d files)" % (output, count))


def _manager_call(base, home, config, request, timeout=60.0):
    from pycat.errors import DeployError
    from pycat.startup.manager_api import call

    node = _node(base, home, config)
    try:
        reply = call(node.base, request, timeout)
    except DeployError as exc:
        raise click.ClickException(str(exc))
    if not reply.get("ok"):
        raise click.ClickException(reply.get("error") or "failed")
    return reply


@main.command()
@node_options
@click.argument("source", type=click.Path(exists=True))
@click.option("--name", metavar="NAME", help="Context name: ROOT, app, a#b, app##2, or /app##2 "
              "[default: the WAR or folder name].")
@click.option("--host", "host_name", metavar="HOST", help="Host to deploy to [default: the first].")
def deploy(base, home, config, defines, source, name, host_name):
    """Deploy (or redeploy) a .war or an application folder on the running node."""
    import tempfile

    from pycat.errors import DeployError
    from pycat.webapp.war import build_war

    source = os.path.abspath(source)
    # the node checks the name (war.parse_context_name) before it writes anything into appBase
    name = name or os.path.basename(source.rstrip(os.sep))
    with tempfile.TemporaryDirectory() as tmp:
        war = source
        if os.path.isdir(source):
            war = os.path.join(tmp, "app.war")
            try:
                build_war(source, war)
            except DeployError as exc:     # e.g. a symbolic link in the folder: a message, not a traceback
                raise click.ClickException(str(exc))
        reply = _manager_call(base, home, config, {"cmd": "deploy", "war": war, "name": name, "host": host_name})
    click.echo("OK - %s" % reply["message"])


@main.command()
@node_options
@click.argument("name")
@click.option("--host", "host_name", metavar="HOST", help="Host [default: the first].")
def undeploy(base, home, config, defines, name, host_name):
    """Undeploy an application (NAME: /app, /app##2, app##2, ROOT) and delete its files from appBase."""
    reply = _manager_call(base, home, config, {"cmd": "undeploy", "name": name, "host": host_name})
    click.echo("OK - %s" % reply["message"])


@main.command("list")
@node_options
def list_(base, home, config, defines):
    """List the applications of the running node (Tomcat manager's list)."""
    reply = _manager_call(base, home, config, {"cmd": "list"})
    # Tomcat manager's text format: path:running|stopped:sessions:docBase
    click.echo("OK - Listed applications")
    for app in reply["apps"]:
        state = "running" if app["state"] == "STARTED" else "stopped"
        click.echo("%s:%s:%s:%s" % (app["name"] or "/", state, app["sessions"], app["docBase"]))


@main.group()
def farm():
    """The cluster's farm (FarmWarDeployer): WARs deployed on every node."""


@farm.command("list")
@node_options
@click.option("--host", "host_name", metavar="HOST", help="Host whose farm to show [default: the first].")
def farm_list(base, home, config, defines, host_name):
    """Which WARs the farm holds, their versions, and which nodes run them."""
    import datetime

    reply = _manager_call(base, home, config, {"cmd": "farm-list", "host": host_name})
    click.echo("OK - Listed the farm (%d WAR%s)" % (len(reply["wars"]), "" if len(reply["wars"]) == 1 else "s"))
    for war in reply["wars"]:
        when = datetime.datetime.fromtimestamp(war["version"] / 1000.0).isoformat(sep=" ", timespec="seconds")
        click.echo("%s  %s  version %d (%s)  %d bytes  sha256 %s  from %s" % (
            war["war"], war["path"], war["version"], when, war["size"], war["sha256"][:16], war["origin"]))
        for node, state in sorted(war["nodes"].items()):
            click.echo("    %-40s %s" % (node, state))


@farm.command("deploy")
@node_options
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", metavar="NAME", help="Context name: ROOT, app, a#b, app##2 [default: the WAR's name].")
@click.option("--host", "host_name", metavar="HOST", help="Host [default: the first].")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds to wait for the node.")
def farm_deploy(base, home, config, defines, source, name, host_name, timeout):
    """Deploy a .war on this node and send it to every member of the cluster."""
    source = os.path.abspath(source)
    reply = _manager_call(base, home, config, {"cmd": "farm-deploy", "war": source, "name": name or os.path.basename(source),
                                               "host": host_name}, timeout)
    click.echo("OK - %s" % reply["message"])


@farm.command("undeploy")
@node_options
@click.argument("name")
@click.option("--host", "host_name", metavar="HOST", help="Host [default: the first].")
def farm_undeploy(base, home, config, defines, name, host_name):
    """Undeploy an application on every node of the farm (NAME: /app, app, app##2, ROOT)."""
    reply = _manager_call(base, home, config, {"cmd": "farm-undeploy", "name": name, "host": host_name})
    click.echo("OK - %s" % reply["message"])


@main.group()
def cluster():
    """The cluster as this node sees it."""


@cluster.command("status")
@node_options
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document (/manager/cluster/json's).")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for the node.")
def cluster_status(base, home, config, defines, as_json, timeout):
    """Members, distributable apps' managers, farm and cluster valves of the running node."""
    import json

    status = _manager_call(base, home, config, {"cmd": "cluster-status"}, timeout)["status"]
    if as_json:
        click.echo(json.dumps(status, indent=2, sort_keys=True))
        return
    for line in cluster_status_lines(status):
        click.echo(line)


def cluster_status_lines(status):
    """cluster_status()'s dict (pycat.startup.manager_api) as readable lines."""
    def secs(ms):
        return "-" if ms is None else "%.1fs" % (ms / 1000.0)

    def member(m, note=""):
        return "    %-28s domain=%-10s alive %-9s id %s%s" % (m["name"], m["domain"] or "-", secs(m["alive_ms"]),
                                                            m["id"][:12], note)

    out = []
    if not status["clusters"]:
        out.append("This node has no <Cluster>.")
    for c in status["clusters"]:
        out.append("Cluster %s (%s, in %s)" % (c["name"], c["state"], c["container"]))
        if c.get("turnover") is not None:
            out.append("  Turnover mode (this node's JvmRouteBinderValve): %s" % ("on" if c["turnover"] else "off"))
        out.append("  Members (%d besides this node):" % len(c["members"]))
        if c["local_member"]:
            out.append(member(c["local_member"], "  (this node)"))
        for m in c["members"]:
            out.append(member(m))
        out.append("  Distributable applications:")
        if not c["managers"]:
            out.append("    (none)")
        for m in c["managers"]:
            sessions = (m["sessions"] or {}).get("active")
            line = "    %-24s %s  sessions here: %s" % (m["name"], m["class"].rsplit(".", 1)[-1], sessions)
            if "roles" in m:
                line += "  roles: %s" % (", ".join("%s=%s" % kv for kv in sorted(m["roles"].items())) or "-")
            if m.get("replications"):
                line += "  avg replication: %.2f ms (%d)" % (m["avg_replication_ms"], m["replications"])
            if m.get("state_transfer_seconds") is not None:
                line += "  state transfer: %.0f ms" % (m["state_transfer_seconds"] * 1000)
            out.append(line)
            if m["counters"]:
                out.append("      " + " ".join("%s=%s" % kv for kv in m["counters"].items()))
        out.append("  Valves:")
        if not c["valves"]:
            out.append("    (none)")
        for v in c["valves"]:
            out.append("    %s%s" % (v["class"], "" if "enabled" not in v else "  enabled=%s" % str(v["enabled"]).lower()))
        farm = c.get("farm")
        if farm:
            out.append("  Farm (%s):" % farm["class"].rsplit(".", 1)[-1])
            if farm.get("error"):
                out.append("    %s" % farm["error"])
            for war in farm.get("wars") or ():
                out.append("    %s  %s  version %s  %s bytes" % (war["war"], war.get("path", ""), war["version"], war["size"]))
                for node, state in sorted((war.get("nodes") or {}).items()):
                    out.append("      %-40s %s" % (node, state))
    return out


if __name__ == "__main__":
    main()
