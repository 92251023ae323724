"""A small Flask app, served by wasmwsgi at /flask/.

Fill site-packages/ first with `make vendor-apps` (Flask and its dependencies, from
Debian). Every request runs in a fresh interpreter, so nothing in this module survives
from one request to the next: state that must last lives in the client's signed session
cookie, as in any Flask app deployed on several processes.

Routes:
    GET  /              HTML page rendered from templates/ (base layout + page)
    GET  /api/info      JSON
    GET  /hello         form; POST /hello echoes the "name" field
    GET  /old-home      redirect to /
    GET  /visits        a counter kept in the signed session cookie
    anything else       the custom 404 page
"""
import sys

from flask import Flask, jsonify, redirect, render_template, request, session, url_for

app = Flask(__name__)
# An example key: a real app reads it from its configuration and keeps it secret.
app.config["SECRET_KEY"] = "wasmwsgi-example-not-a-secret"


@app.route("/")
def index():
    return render_template("index.html", title="Home", python=sys.version.split()[0], platform=sys.platform)


@app.route("/api/info")
def info():
    return jsonify(
        framework="flask",
        python=sys.version.split()[0],
        platform=sys.platform,
        script_root=request.script_root,
        path=request.path,
    )


@app.route("/hello", methods=["GET", "POST"])
def hello():
    name = None
    if request.method == "POST":
        name = request.form.get("name", "").strip() or "stranger"
    return render_template("hello.html", title="Hello", name=name)


@app.route("/old-home")
def old_home():
    return redirect(url_for("index"))


@app.route("/visits")
def visits():
    session["visits"] = session.get("visits", 0) + 1
    return jsonify(visits=session["visits"])


@app.errorhandler(404)
def not_found(error):
    return render_template("404.html", title="Not found", path=request.path), 404


# Work done at import time is kept in the app's snapshot, which every request starts
# from: compiling the templates here spares each request the Jinja compile.
for _name in ("base.html", "index.html", "hello.html", "404.html"):
    app.jinja_env.get_template(_name)
