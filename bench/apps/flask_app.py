"""The benchmark endpoints as a Flask application, served by gunicorn.

gunicorn runs one synchronous worker (its default worker class): one
request at a time, and the connection is closed after every response.
"""

import calendar
import html

from flask import Flask, Response, jsonify, request

HEAD = (
    "<html><head><title>Calendar</title></head><body><h3>Calendar Server</h3>"
    "<form action='/'>Year: <input type='text' name='year' size='4'> "
    "<input type='submit' value='Go'></form><pre>"
)
TAIL = "</pre></body></html>"

app = Flask(__name__)


@app.get("/plaintext")
def plaintext() -> Response:
    return Response(b"Hello, World!", content_type="text/plain")


@app.get("/json")
def json_endpoint() -> Response:
    return jsonify(message="Hello, World!")


@app.get("/")
def home() -> Response:
    year = int(request.args.get("year", "2003"))
    page = HEAD + html.escape(calendar.calendar(year)) + TAIL
    return Response(page, content_type="text/html; charset=utf-8")
