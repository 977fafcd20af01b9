"""The README's complete small app, taken from the README itself, packaged with `pycat war` and
dropped into a running node's webapps/: it must be served as the README says."""
import os
import re
import subprocess

from node_helpers import HOME, pycat_cmd, wait_until


def readme_blocks():
    text = open(os.path.join(HOME, "README.md"), encoding="utf-8").read()
    section = text.split("## Web apps", 1)[1].split("\n## ", 1)[0]
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    xml = re.search(r"```xml\n(<web-app.*?)```", section, re.S).group(1)
    return python, xml


def test_readme_app_is_served_when_dropped_as_a_war(tmp_path, pycat_node, pycat_user):
    python, xml = readme_blocks()
    app = tmp_path / "hello"
    (app / "WEB-INF" / "classes").mkdir(parents=True)
    (app / "WEB-INF" / "classes" / "hello.py").write_text(python)
    (app / "WEB-INF" / "web.xml").write_text(xml)
    war = tmp_path / "hello.war"
    subprocess.run(pycat_cmd("war", str(app), "-o", str(war)), check=True, capture_output=True, timeout=60)

    node = pycat_node(attributes={"engine": {"backgroundProcessorDelay": "0.2"}})
    # copied under another name, then renamed: what a careful operator (or a farm deployer) does
    node.install(war)
    user = pycat_user(node)
    wait_until(lambda: user.get("/hello/hello?name=readme").status == 200, timeout=30,
               message="the dropped WAR to be served")
    assert user.get("/hello/hello?name=readme").text == "hello readme, visit 2\n"  # the cookie came back
    assert user.get("/hello/hello?name=readme").text == "hello readme, visit 3\n"
    assert (node.get("/hello/wsgi/x").status, node.get("/hello/wsgi/x").text) == (200, "hello from WSGI at /hello/wsgi\n")
    assert os.path.isdir(os.path.join(node.app_base, "hello", "WEB-INF"))  # unpackWARs
