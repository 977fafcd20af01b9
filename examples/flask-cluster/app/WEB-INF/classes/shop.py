"""A small Flask shop whose ``flask.session`` is the container's session (one line of setup), so
pycat's cluster replicates the login and the cart to the other nodes.

    POST /login   user=NAME           log in (a new session id, as a login should)
    GET  /me                          {"user", "node"} or 401
    POST /cart    item=NAME           add one item (logged-in users only)
    GET  /cart                        {"user", "items", "node"}
    POST /logout                      end the session
"""
import os

from flask import Flask, jsonify, request, session

from pycat.adapters.flask import PycatSessionInterface

app = Flask(__name__)
app.session_interface = PycatSessionInterface()


def _node():
    # the node that served this request: its jvmRoute, the suffix of the session ids it makes
    return request.environ["pycat.request"].context.manager.jvm_route or str(os.getpid())


@app.post("/login")
def login():
    user = request.form.get("user", "").strip()
    if not user:
        return jsonify(error="user is required"), 400
    container = request.environ["pycat.session"]
    if container.exists:
        container.change_id()          # a session from before the login gets a new id (no fixation)
    session["user"] = user
    session.setdefault("items", [])
    return jsonify(user=user, node=_node())


@app.get("/me")
def me():
    if "user" not in session:
        return jsonify(error="not logged in", node=_node()), 401
    return jsonify(user=session["user"], node=_node())


@app.route("/cart", methods=["GET", "POST"])
def cart():
    if "user" not in session:
        return jsonify(error="not logged in", node=_node()), 401
    if request.method == "POST":
        session["items"].append(request.form["item"])     # changed in place: replicated all the same
    return jsonify(user=session["user"], items=session["items"], node=_node())


@app.post("/logout")
def logout():
    request.environ["pycat.session"].invalidate()
    return jsonify(logged_out=True)
