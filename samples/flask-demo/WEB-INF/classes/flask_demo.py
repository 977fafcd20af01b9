"""A plain Flask application: nothing in it knows about pycat (web.xml names ``flask_demo:app``).

Routes are relative to wherever the container mounts the app; ``url_for`` includes the context
path because Flask reads SCRIPT_NAME.
"""
from flask import Flask, abort, jsonify, render_template, request, url_for

from notes import NOTES          # a second module of this app, from WEB-INF/classes too

app = Flask(__name__)


@app.route("/")
def index():
    return render_template("index.html", notes=NOTES)


@app.route("/notes/<int:note_id>")
def note(note_id):
    if not 0 <= note_id < len(NOTES):
        abort(404)
    return jsonify(id=note_id, text=NOTES[note_id], url=url_for("note", note_id=note_id))


@app.route("/echo", methods=["POST"])
def echo():
    return jsonify(form=request.form.to_dict(), script_root=request.script_root, path=request.path)
