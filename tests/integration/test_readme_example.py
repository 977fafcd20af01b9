"""The README's complete small app, taken from the README itself, packaged with `pycat war` and
dropped into a running node's webapps/: it must be served as the README says."""
import http.cookiejar
import os
import re
import shutil
import subprocess
import urllib.request

from node_helpers import HOME, SERVER_XML, Procs, free_port, http_get, make_base, node_env, pycat_cmd, wait_until


def readme_blocks():
    text = open(os.path.join(HOME, "README.md"), encoding="utf-8").read()
    section = text.split("## Web apps", 1)[1].split("\n## ", 1)[0]
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    xml = re.search(r"```xml\n(<web-app.*?)```", section, re.S).group(1)
    return python, xml


def test_readme_app_is_served_when_dropped_as_a_war(tmp_path):
    python, xml = readme_blocks()
    app = tmp_path / "hello"
    (app / "WEB-INF" / "classes").mkdir(parents=True)
    (app / "WEB-INF" / "classes" / "hello.py").write_text(python)
    (app / "WEB-INF" / "web.xml").write_text(xml)
    war = tmp_path / "hello.war"
    subprocess.run(pycat_cmd("war", str(app), "-o", str(war)), check=True, capture_output=True, timeout=60)

    port = free_port()
    server_xml = SERVER_XML.format(shutdown_port=free_port()).replace(
        'defaultHost="localhost"', 'defaultHost="localhost" backgroundProcessorDelay="0.2"')
    base = make_base(tmp_path / "node", port, server_xml=server_xml)
    procs = Procs()
    try:
        with open(os.path.join(base, "logs", "out.txt"), "w") as out:
            proc = procs.popen(pycat_cmd("run"), env=node_env(base), cwd=base, stdout=out,
                               stderr=subprocess.STDOUT)
        wait_until(lambda: http_get(port, "/") is not None or proc.poll() is not None, timeout=30,
                   message="the node to serve")
        assert proc.poll() is None
        # copy under another name, then rename: what a careful operator (or a farm deployer) does
        shutil.copy(war, os.path.join(base, "webapps", ".hello.war.part"))
        os.rename(os.path.join(base, "webapps", ".hello.war.part"), os.path.join(base, "webapps", "hello.war"))

        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        url = "http://127.0.0.1:%d/hello/hello?name=readme" % port

        def get(u):
            try:
                with opener.open(u, timeout=5) as resp:
                    return resp.status, resp.read().decode()
            except urllib.error.HTTPError as err:
                return err.code, ""
            except OSError:
                return None, ""

        wait_until(lambda: get(url)[0] == 200, timeout=30, message="the dropped WAR to be served")
        assert get(url) == (200, "hello readme, visit 2\n")  # the session cookie came back
        assert get(url) == (200, "hello readme, visit 3\n")
        assert get("http://127.0.0.1:%d/hello/wsgi/x" % port) == (200, "hello from WSGI at /hello/wsgi\n")
        assert os.path.isdir(os.path.join(base, "webapps", "hello", "WEB-INF"))  # unpackWARs
    finally:
        procs.cleanup()
