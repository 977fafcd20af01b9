"""A Flask app whose ``flask.session`` is the container session (web.xml: session_flask:app).

The views are plain Flask; the one line of configuration is the session interface.
"""
from flask import Flask, session

from pycat.adapters.flask import PycatSessionInterface

app = Flask(__name__)
app.session_interface = PycatSessionInterface()


@app.route("/")
def visits():
    session["visits"] = session.get("visits", 0) + 1
    return "visits=%d\n" % session["visits"], 200, {"Content-Type": "text/plain"}


@app.route("/peek")
def peek():
    return "visits=%s\n" % session.get("visits", 0), 200, {"Content-Type": "text/plain"}


@app.route("/logout")
def logout():
    session.clear()
    return "cleared\n", 200, {"Content-Type": "text/plain"}
