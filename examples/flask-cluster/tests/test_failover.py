"""The shop on a real two-node pycat cluster: a user logs in and fills a cart, the node holding
the session is killed (kill -9), and the user carries on on the other node, still logged in, cart
intact. No conftest: the fixtures come from pycat's pytest plugin, installed with pycat.

Run it with ``pytest`` in this folder (pycat and Flask installed); ``pytest -n 2`` works too.
"""
import pathlib

import pytest

from pycat.testing import App

APP = pathlib.Path(__file__).resolve().parents[1] / "app"
SHOP = App(APP, name="shop", war=True)        # built with `pycat war`, deployed as webapps/shop.war


@pytest.fixture
def cluster(pycat_cluster):
    # two nodes, DeltaManager, synchronous replication: a response leaves after the other node
    # applied the change, so the very next request may go anywhere
    return pycat_cluster(2, manager="delta", send_options=6, apps=[SHOP])


def test_login_and_cart_survive_the_loss_of_the_node(cluster, pycat_user):
    alice = pycat_user(cluster[0], name="alice")
    assert alice.get("/shop/me").status == 401                        # not logged in yet

    login = alice.post("/shop/login", data={"user": "alice"}, expect=200)
    assert login.json()["node"] == "node1"
    alice.post("/shop/cart", data={"item": "teapot"}, expect=200)
    alice.post("/shop/cart", data={"item": "cups"}, expect=200)

    # the node the session lives on is the one its id names (the jvmRoute suffix)
    owner = cluster.node_for(alice)
    assert owner is cluster[0]
    survivor = cluster.others(owner)[0]
    # the other node already holds a copy (asked with the user's cookie, as a balancer would send it)
    replica = alice.get("/shop/cart", node=survivor, expect=200).json()
    assert replica["items"] == ["teapot", "cups"] and replica["node"] == survivor.name

    owner.kill()                                                     # kill -9: no goodbye
    cart = alice.get("/shop/cart", node=survivor, expect=200).json()
    assert cart == {"user": "alice", "items": ["teapot", "cups"], "node": survivor.name}
    # the survivor took the session over: the id now names it, so a balancer sticks to it
    assert alice.route == survivor.name
    alice.node = survivor                                            # where the balancer sends her now
    alice.post("/shop/cart", data={"item": "sugar"}, expect=200)

    # the node comes back, receives every session, and serves alice as if nothing happened
    cluster.restart(owner)
    back = alice.get("/shop/cart", node=owner, expect=200).json()
    assert back["items"] == ["teapot", "cups", "sugar"] and back["node"] == owner.name


def test_users_do_not_share_sessions(cluster, pycat_user):
    alice, bob = pycat_user(cluster[0], name="alice"), pycat_user(cluster[1], name="bob")
    alice.post("/shop/login", data={"user": "alice"}, expect=200)
    bob.post("/shop/login", data={"user": "bob"}, expect=200)
    alice.post("/shop/cart", data={"item": "teapot"}, expect=200)
    assert bob.get("/shop/cart", node=cluster[0], expect=200).json()["items"] == []
    assert alice.get("/shop/me", node=cluster[1], expect=200).json()["user"] == "alice"
    bob.post("/shop/logout", expect=200)
    assert bob.get("/shop/me", node=cluster[0]).status == 401       # logged out everywhere


def test_deploy_and_undeploy_on_a_running_node(pycat_node, pycat_user):
    node = pycat_node()                                  # pycat's default server.xml, no apps yet
    assert node.get("/shop/me").status == 404
    node.deploy(SHOP)                                    # what `pycat deploy shop.war` does
    carol = pycat_user(node, name="carol")
    assert carol.post("/shop/login", data={"user": "carol"}, expect=200).json()["node"] == node.name
    assert carol.get("/shop/me", expect=200).json()["user"] == "carol"
    node.undeploy("/shop")
    assert node.get("/shop/me").status == 404
