"""A redeploy keeps the sessions (as StandardManager's unload/load does in Tomcat); values of
the app's own classes come back as instances of the new code's classes."""
import os
import sys

import pytest

from deploy_helpers import Node, bump_mtime, write_war

CART = """from pycat.webapp.servlet import HttpServlet
from model import Cart

CODE = %r


class Shop(HttpServlet):
    def do_get(self, request, response):
        session = request.get_session(True)
        cart = session.get_attribute("cart")
        if cart is None:
            cart = Cart()
        cart.items.append(request.get_parameter("item", "-"))
        session.set_attribute("cart", cart)
        response.set_header("Content-Type", "text/plain")
        response.write("%%s %%s %%s" %% (CODE, ",".join(cart.items), type(cart).__module__))
"""
MODEL = """class Cart:
    def __init__(self):
        self.items = []
"""
WEB = """<web-app>
  <servlet><servlet-name>s</servlet-name><servlet-class>shop:Shop</servlet-class></servlet>
  <servlet-mapping><servlet-name>s</servlet-name><url-pattern>/buy</url-pattern></servlet-mapping>
</web-app>"""


def files(code):
    return {"WEB-INF/web.xml": WEB, "WEB-INF/classes/shop.py": CART % code,
            "WEB-INF/classes/model.py": MODEL}


@pytest.mark.timeout(60)
def test_sessions_survive_a_redeploy(tmp_path):
    node = Node(tmp_path)
    try:
        war = write_war(os.path.join(node.app_base, "shop.war"), files("v1"))
        node.config.check(), node.config.check()
        status, headers, body = node.get("/shop/buy?item=apple")
        sid = headers["set-cookie"].split(";")[0].split("=", 1)[1]
        code, items, module = body.decode().split()
        assert (code, items) == ("v1", "apple")
        old_prefix = module.split(".")[0]
        for gen in (2, 3):
            write_war(war, files("v%d" % gen))
            bump_mtime(war, gen * 2)
            node.config.check(), node.config.check()
            status, headers, body = node.get("/shop/buy?item=pear%d" % gen, headers={"Cookie": "JSESSIONID=" + sid})
            assert status == 200 and "set-cookie" not in headers
            code, items, module = body.decode().split()
            live = node.host.find_child("/shop").loader.prefix
            assert code == "v%d" % gen and module == live + ".model"
            assert items == ",".join(["apple"] + ["pear%d" % g for g in range(2, gen + 1)])
        assert not [k for k in sys.modules if k.startswith(old_prefix + ".") and k.split(".")[0] != live]
    finally:
        node.stop()
    assert not [k for k in sys.modules if k.startswith("_pycat_webapp_")]
