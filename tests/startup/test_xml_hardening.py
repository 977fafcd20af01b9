"""XXE: every XML file pycat reads (server.xml, context.xml, web.xml, tomcat-users.xml) refuses
entities and never reads a local file through one, whatever lxml's defaults; each case has a
positive control (the same file without the DOCTYPE is read)."""
import os
import subprocess
import sys
import uuid

import pytest
from lxml import etree

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))

from node_helpers import (HELLO, Procs, free_port, http_get, make_base, node_env, pycat_cmd,  # noqa: E402
                          wait_until)
from pycat import xmlsafe  # noqa: E402
from pycat.errors import ConfigError  # noqa: E402
from pycat.realm.user_database import UserDatabase  # noqa: E402
from pycat.startup import control  # noqa: E402
from pycat.startup.digester import Digester  # noqa: E402
from pycat.webapp.web_xml import parse_web_xml  # noqa: E402

D = "startup_dummies:"


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.cleanup()


@pytest.fixture
def secret(tmp_path):
    """(path, text) of a local file an attacker would like to read."""
    text = "TOP-SECRET-%s" % uuid.uuid4().hex
    path = tmp_path / "secret.txt"
    path.write_text(text)
    return str(path), text


def doctypes(root, secret_path):
    """DOCTYPEs that read a local file through an entity, each with the reference it needs."""
    url = "file://" + secret_path
    return {
        "external general entity": ('<!DOCTYPE %s [<!ENTITY x SYSTEM "%s">]>' % (root, url), "&x;"),
        "external parameter entity": ('<!DOCTYPE %s [<!ENTITY %% p SYSTEM "%s"> %%p;]>' % (root, url), ""),
        "internal entity wrapping an external one": (
            '<!DOCTYPE %s [<!ENTITY x SYSTEM "%s"><!ENTITY y "&x;">]>' % (root, url), "&y;"),
        # an external DTD is never loaded, so this entity is undeclared: refused too
        "external DTD subset": ('<!DOCTYPE %s SYSTEM "%s">' % (root, url), "&x;"),
    }


CASES = ["external general entity", "external parameter entity", "internal entity wrapping an external one",
         "external DTD subset"]


def refused(call, path, secret_text, match="entit"):
    with pytest.raises(ConfigError) as err:
        call()
    message = str(err.value)
    assert secret_text not in message
    assert match in message and str(path) in message, message
    return message


# -- server.xml ---------------------------------------------------------------------------------
SERVER_XML = ('<?xml version="1.0"?>\n{doctype}\n<Server className="{d}Server" port="8005" shutdown="S">'
              '<Service className="{d}Service"><Engine className="{d}Engine" name="E" defaultHost="h">'
              '<Host className="{d}Host" name="h"><Alias>a{ref}b</Alias></Host></Engine></Service></Server>')


def aliases(node):
    """Every add_alias value under a digested dummy tree."""
    found = []
    for call in getattr(node, "calls", ()):
        if call[0] == "add_alias":
            found.append(call[1])
        for arg in call[1:]:
            found += aliases(arg)
    return found


@pytest.mark.parametrize("case", CASES)
def test_server_xml_with_an_entity_is_refused(tmp_path, secret, case):
    secret_path, secret_text = secret
    doctype, ref = doctypes("Server", secret_path)[case]
    xml = tmp_path / "server.xml"
    # in element text: where lxml < 5's default parser put the file's content
    xml.write_text(SERVER_XML.format(doctype=doctype, d=D, ref=ref))
    refused(lambda: Digester().parse_file(xml), xml, secret_text)
    # the `pycat stop` path reads the same file through the same parser
    refused(lambda: control.shutdown_settings(str(xml), {}), xml, secret_text)
    # positive control: the same file without the DOCTYPE is read
    xml.write_text(SERVER_XML.format(doctype="", d=D, ref=""))
    assert aliases(Digester().parse_file(xml)) == ["ab"]
    assert control.shutdown_settings(str(xml), {}) == (8005, "localhost", "S")


def test_parser_options_are_explicit():
    # whatever the lxml version's defaults, these are set on every parser pycat makes
    assert xmlsafe.PARSER_OPTIONS == {"resolve_entities": False, "no_network": True, "load_dtd": False,
                                      "dtd_validation": False, "attribute_defaults": False, "huge_tree": False}
    with pytest.raises(ValueError):
        xmlsafe.make_parser(resolve_entities=True)


def test_billion_laughs_is_refused_quickly():
    lol = ('<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">' + "".join(
        '<!ENTITY %s "%s">' % (chr(98 + i), ("&%s;" % chr(97 + i)) * 10) for i in range(8)) + ']><r>&i;</r>')
    # libxml2's amplification limit or our entity check: either refuses, nothing is expanded
    with pytest.raises((ConfigError, etree.XMLSyntaxError)):
        xmlsafe.parse(lol.encode(), "lol.xml")
    small = '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">]><r>&a;</r>'
    with pytest.raises(ConfigError, match="^lol.xml: the DOCTYPE declares the entity a"):
        xmlsafe.parse(small.encode(), "lol.xml")
    assert xmlsafe.parse(b"<r>aaaaaaaaaa</r>", "lol.xml").text == "aaaaaaaaaa"


# -- web.xml ------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_web_xml_with_an_entity_is_refused(tmp_path, secret, case):
    secret_path, secret_text = secret
    doctype, ref = doctypes("web-app", secret_path)[case]
    body = ('<web-app><display-name>app%s</display-name><context-param><param-name>p</param-name>'
            '<param-value>v%s</param-value></context-param></web-app>')
    web = tmp_path / "web.xml"
    web.write_text('<?xml version="1.0"?>\n' + doctype + body % (ref, ref))
    refused(lambda: parse_web_xml(str(web)), web, secret_text)
    refused(lambda: parse_web_xml(web.read_bytes(), name="WEB-INF/web.xml"), "WEB-INF/web.xml", secret_text)
    web.write_text(body % ("", ""))
    parsed = parse_web_xml(str(web))
    assert parsed.display_name == "app" and parsed.context_params == {"p": "v"}


def test_servlet_2_3_web_xml_doctype_is_still_read_and_its_dtd_never_fetched(tmp_path):
    # the public DTD of an old web.xml names an http URL: no_network + load_dtd=False never fetch it
    web = tmp_path / "web.xml"
    web.write_text('<?xml version="1.0"?>\n<!DOCTYPE web-app PUBLIC "-//Sun Microsystems, Inc.//DTD Web '
                   'Application 2.3//EN" "http://127.0.0.1:%d/web-app_2_3.dtd">\n'
                   '<web-app><display-name>old</display-name></web-app>' % free_port())
    assert parse_web_xml(str(web)).display_name == "old"


# -- tomcat-users.xml ---------------------------------------------------------------------------
def test_tomcat_users_xml_with_an_entity_is_refused(tmp_path, secret):
    secret_path, secret_text = secret
    doctype, ref = doctypes("tomcat-users", secret_path)["external general entity"]
    users = tmp_path / "tomcat-users.xml"
    users.write_text(doctype + '<tomcat-users><user username="u" password="p%s" roles="r"/></tomcat-users>' % ref)
    refused(lambda: UserDatabase.load(str(users)), users, secret_text)
    users.write_text('<tomcat-users><user username="u" password="p" roles="r"/></tomcat-users>')
    assert UserDatabase.load(str(users)).users["u"].password == "p"


# -- the CLI and a real node ---------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_configtest_refuses_an_xxe_server_xml(tmp_path, secret):
    secret_path, secret_text = secret
    base = make_base(tmp_path / "node", free_port())
    server_xml = os.path.join(base, "conf", "server.xml")
    with open(server_xml) as fh:
        good = fh.read()
    head, _, rest = good.partition("\n")          # after the XML declaration
    doctype, ref = doctypes("Server", secret_path)["external general entity"]
    with open(server_xml, "w") as fh:
        fh.write(head + "\n" + doctype + "\n" + rest.replace('shutdown="SHUTDOWN"', 'shutdown="S%s"' % ref))
    bad = subprocess.run(pycat_cmd("configtest"), env=node_env(base), capture_output=True, text=True, timeout=50)
    assert bad.returncode != 0
    out = bad.stdout + bad.stderr
    assert secret_text not in out
    assert "entity 'x'" in out and server_xml in out, out
    with open(server_xml, "w") as fh:
        fh.write(good)
    ok = subprocess.run(pycat_cmd("configtest"), env=node_env(base), capture_output=True, text=True, timeout=50)
    assert ok.returncode == 0 and "Configuration OK" in ok.stdout, ok.stdout + ok.stderr


def _read_tree(folder):
    out = []
    for dirpath, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(dirpath, name), errors="replace") as fh:
                out.append(fh.read())
    return "\n".join(out)


@pytest.mark.timeout(90)
def test_a_real_node_refuses_xxe_context_xml_and_web_xml(tmp_path, secret, procs):
    secret_path, secret_text = secret
    port = free_port()
    base = make_base(tmp_path / "node", port, properties="shutdown.port=-1\n")
    doctype, ref = doctypes("Context", secret_path)["external general entity"]
    descriptors = os.path.join(base, "conf", "Catalina", "localhost")
    os.makedirs(descriptors)
    for name in ("good", "evil"):
        folder = os.path.join(base, "apps", name)
        os.makedirs(folder)
        with open(os.path.join(folder, "index.html"), "w") as fh:
            fh.write("%s app\n" % name)
    with open(os.path.join(descriptors, "good.xml"), "w") as fh:
        fh.write('<Context docBase="${catalina.base}/apps/good"/>')
    evil_context = os.path.join(descriptors, "evil.xml")
    with open(evil_context, "w") as fh:
        fh.write('%s<Context docBase="${catalina.base}/apps/evil"><Parameter name="p" value="%s"/></Context>'
                 % (doctype, ref))
    web_doctype, web_ref = doctypes("web-app", secret_path)["external general entity"]
    evil_web = os.path.join(base, "webapps", "evilweb", "WEB-INF", "web.xml")
    os.makedirs(os.path.dirname(evil_web))
    with open(evil_web, "w") as fh:
        fh.write('%s<web-app><display-name>%s</display-name></web-app>' % (web_doctype, web_ref))
    with open(os.path.join(base, "webapps", "evilweb", "index.html"), "w") as fh:
        fh.write("evilweb\n")
    out_path = os.path.join(base, "logs", "run.out")
    with open(out_path, "wb") as out:
        procs.popen(pycat_cmd("run"), env=node_env(base), stdout=out, stderr=subprocess.STDOUT)

    def logs():
        return _read_tree(os.path.join(base, "logs"))
    # positive controls: ROOT and the good descriptor are served
    assert wait_until(lambda: http_get(port, "/"), message="ROOT") == (200, HELLO)
    assert wait_until(lambda: http_get(port, "/good/"), message="/good") == (200, b"good app\n")
    wait_until(lambda: evil_context in logs() and evil_web in logs(), message="both refusals logged")
    text = logs()
    assert "declares the entity x" in text
    assert http_get(port, "/evil/")[0] == 404 and http_get(port, "/evilweb/")[0] == 404
    assert secret_text not in text
