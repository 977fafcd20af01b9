"""Nodes as real processes: bin/startup.sh / shutdown.sh, two nodes from one install, stock Tomcat
server.xml, port in use, SIGTERM."""
import os
import signal
import socket
import subprocess

import pytest

from node_helpers import (HELLO, HOME, free_port, http_get, is_alive, make_base, node_env, pycat_cmd, read,
                      run_script, wait_until)

STOCK = [p for p in ("/usr/share/tomcat10/etc/server.xml", "/etc/tomcat10/server.xml") if os.path.exists(p)]


def served(port, path="/"):
    return wait_until(lambda: http_get(port, path), message="HTTP on port %d" % port)


@pytest.mark.timeout(90)
def test_startup_serve_shutdown_with_the_bin_scripts(tmp_path, procs):
    port = free_port()
    base = make_base(tmp_path / "node", port)
    env = node_env(base)
    started = run_script("startup.sh", env)
    assert started.returncode == 0, started.stdout + started.stderr
    pid_file = os.path.join(base, "logs", "catalina.pid")
    pid = int(read(pid_file))
    procs.track(pid)
    assert served(port) == (200, HELLO)
    assert is_alive(pid)
    # a second start refuses while the first runs
    again = run_script("startup.sh", env)
    assert again.returncode != 0 and "appears to be running with PID %d" % pid in again.stderr
    stopped = run_script("shutdown.sh", env)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not is_alive(pid) and not os.path.exists(pid_file)
    out = read(os.path.join(base, "logs", "catalina.out"))
    assert "Server startup in" in out and "Shutdown command received" in out
    assert "JreMemoryLeakPreventionListener: JVM-specific" in out  # no-op listeners say so
    assert "Traceback" not in out
    logs = os.listdir(os.path.join(base, "logs"))
    assert any(name.startswith("localhost_access_log") for name in logs), logs


@pytest.mark.timeout(90)
def test_two_nodes_from_one_install(tmp_path, procs):
    ports = [free_port(), free_port()]
    # node b has no shutdown port: shutdown.sh falls back to the pid and SIGTERM
    bases = [make_base(tmp_path / "a", ports[0], properties="jvm.route=a\n"),
             # b's file names another port: -D on the command line wins over catalina.properties
             make_base(tmp_path / "b", free_port(), shutdown_port=-1, properties="jvm.route=b\n")]
    pids = []
    for base, args in zip(bases, [(), ("-Dhttp.port=%d" % ports[1],)]):
        result = run_script("startup.sh", node_env(base), *args)
        assert result.returncode == 0, result.stderr
        pids.append(int(read(os.path.join(base, "logs", "catalina.pid"))))
        procs.track(pids[-1])
    assert pids[0] != pids[1]
    for port in ports:
        assert served(port) == (200, HELLO)
    for base, pid in zip(bases, pids):
        result = run_script("shutdown.sh", node_env(base))
        assert result.returncode == 0, result.stdout + result.stderr
        assert not is_alive(pid)
    assert "Sending SIGTERM" in result.stdout
    assert "Signal SIGTERM received" in read(os.path.join(bases[1], "logs", "catalina.out"))


@pytest.mark.timeout(90)
@pytest.mark.skipif(not STOCK, reason="the Debian tomcat10 package's server.xml is not installed")
def test_stock_tomcat10_server_xml_configtest_and_start(pycat_node):
    # the plugin gives every literal port (8005, 8080, 8443...) a free one and binds to 127.0.0.1
    node = pycat_node(server_xml=STOCK[0], start=False)
    assert node.http_port == node.ports["8080"]
    check = node.cli("configtest")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Configuration OK" in check.stdout
    strict = node.cli("configtest", "--strict")
    assert strict.returncode == 0, strict.stdout + strict.stderr
    node.start()
    assert node.get("/").status in (200, 404)
    assert node.stop() == 0, node.log()
    out = node.log()
    assert "Server startup in" in out and "Server stopped" in out and "Traceback" not in out


@pytest.mark.timeout(60)
def test_port_in_use_is_one_clear_line_and_exit_1(pycat_node):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        node = pycat_node(properties={"http.port": port}, start=False)
        node.start(wait=False)
        assert node.proc.wait(30) == 1
    finally:
        holder.close()
    lines = [line for line in node.log().splitlines() if line.startswith("pycat:")]
    assert len(lines) == 1, node.log()
    assert "Address already in use" in lines[0] and str(port) in lines[0]


@pytest.mark.timeout(60)
def test_run_exits_cleanly_on_sigterm_and_sigint(pycat_node):
    for sig in (signal.SIGTERM, signal.SIGINT):
        node = pycat_node(name=sig.name)
        assert node.get("/").status == 404                 # serving (no ROOT app)
        node.proc.send_signal(sig)
        assert node.proc.wait(30) == 0, node.log()
        out = node.log()
        assert "Signal %s received" % sig.name in out and "Server stopped" in out


@pytest.mark.timeout(60)
def test_configtest_reports_bad_config_with_location(tmp_path):
    base = make_base(tmp_path / "bad", free_port(), server_xml='<Server port="8005">\n  <Service>\n</Server>\n')
    result = subprocess.run(pycat_cmd("configtest"), env=node_env(base), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "server.xml:3" in result.stderr and "line 3, column" in result.stderr


@pytest.mark.timeout(60)
def test_catalina_sh_without_pip_install(tmp_path):
    """bin/catalina.sh runs `python -m pycat` from the install even when pycat is not on sys.path."""
    env = node_env(make_base(tmp_path / "v", free_port()))
    env["PYTHONNOUSERSITE"] = "1"
    result = run_script("catalina.sh", env, "version")
    assert result.returncode == 0 and "Server version:" in result.stdout
    assert "Using CATALINA_HOME: %s" % HOME in result.stdout


@pytest.mark.timeout(90)
def test_pycat_start_wait_stop_and_custom_pid_and_out(tmp_path, procs):
    port = free_port()
    base = make_base(tmp_path / "cli", port)
    pid_file, out_file = str(tmp_path / "run" / "node.pid"), str(tmp_path / "out" / "node.out")
    env = node_env(base, CATALINA_PID=pid_file, CATALINA_OUT=out_file)
    started = subprocess.run(pycat_cmd("start", "--wait", "30"), env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr
    pid = int(read(pid_file))
    procs.track(pid)
    # --wait returned after the server reported startup: it serves at once
    assert http_get(port) == (200, HELLO)
    stopped = subprocess.run(pycat_cmd("stop", "20"), env=env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not is_alive(pid) and not os.path.exists(pid_file)
    assert "Server stopped" in read(out_file)
    # nothing left to stop: a clear message and a non-zero exit
    again = subprocess.run(pycat_cmd("stop"), env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "not running" in again.stderr


@pytest.mark.timeout(60)
def test_background_start_on_a_busy_port_fails_visibly(tmp_path, procs):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        base = make_base(tmp_path / "busy-bg", port)
        started = subprocess.run(pycat_cmd("start", "--wait", "30"), env=node_env(base), capture_output=True,
                                 text=True, timeout=60)
    finally:
        holder.close()
    assert started.returncode != 0
    assert "exited with code 1 during startup" in started.stderr
    assert "Address already in use" in started.stderr
    assert not os.path.exists(os.path.join(base, "logs", "catalina.pid"))


@pytest.mark.timeout(60)
def test_stop_timeout_and_force_on_a_process_that_ignores_sigterm(tmp_path, procs):
    import sys
    base = make_base(tmp_path / "stubborn", free_port(), shutdown_port=-1)
    stubborn = procs.popen([sys.executable, "-c", "import signal, sys, time\n"
                            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                            "print('ready', flush=True)\n"
                            "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout.readline().strip() == "ready"
    pid_file = os.path.join(base, "logs", "catalina.pid")
    with open(pid_file, "w") as fh:
        fh.write("%d\n" % stubborn.pid)
    env = node_env(base)
    soft = subprocess.run(pycat_cmd("stop", "0.5"), env=env, capture_output=True, text=True, timeout=30)
    assert soft.returncode != 0 and "still running" in soft.stderr and "-force" in soft.stderr
    assert stubborn.poll() is None
    hard = subprocess.run(pycat_cmd("stop", "0.5", "-force"), env=env, capture_output=True, text=True, timeout=30)
    assert hard.returncode == 0, hard.stdout + hard.stderr
    assert stubborn.wait(10) == -9 and not os.path.exists(pid_file)
