"""The benchmark endpoints as a CherryPy application (its own cheroot server).

Run as ``python cherrypy_app.py PORT [KEEP_ALIVE_SECONDS]``. One process with
cheroot's default thread pool (10), production environment, no access log.
Two settings differ from CherryPy's defaults, both so that the idle-connection
test measures memory rather than a limit: the listen backlog (5 by default)
and cheroot's cap of 10 idle keep-alive connections are raised.
"""

import calendar
import html
import json
import sys

import cheroot.server
import cherrypy

HEAD = (
    "<html><head><title>Calendar</title></head><body><h3>Calendar Server</h3>"
    "<form action='/'>Year: <input type='text' name='year' size='4'> "
    "<input type='submit' value='Go'></form><pre>"
)
TAIL = "</pre></body></html>"


class Root:
    @cherrypy.expose
    def plaintext(self) -> bytes:
        cherrypy.response.headers["Content-Type"] = "text/plain"
        return b"Hello, World!"

    @cherrypy.expose
    def json(self) -> bytes:
        cherrypy.response.headers["Content-Type"] = "application/json"
        return json.dumps({"message": "Hello, World!"}).encode()

    @cherrypy.expose
    def index(self, year: str = "2003") -> bytes:
        cherrypy.response.headers["Content-Type"] = "text/html; charset=utf-8"
        return (HEAD + html.escape(calendar.calendar(int(year))) + TAIL).encode()


def main() -> None:
    port = int(sys.argv[1])
    keep_alive = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    cheroot.server.HTTPServer.keep_alive_conn_limit = None  # type: ignore[assignment]
    cherrypy.config.update(
        {
            "environment": "production",
            "server.socket_host": "127.0.0.1",
            "server.socket_port": port,
            "server.socket_queue_size": 4096,
            "server.socket_timeout": keep_alive,
            "log.screen": False,
            "log.access_file": "",
            "engine.autoreload.on": False,
        }
    )
    cherrypy.quickstart(Root(), "/")


if __name__ == "__main__":
    main()
