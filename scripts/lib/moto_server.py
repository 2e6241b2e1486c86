"""moto's server mode, one request at a time: the local DynamoDB, EventBridge and SQS of the tests.

Usage: python moto_server.py HOST PORT

Stock `moto_server` answers on a thread per request, and two conditional writes racing on one item can
then both succeed: DynamoDB never lets that happen, and the exactly-once tests would see it. A lock
around the whole application (the response read to its end inside it) makes moto one serialised
service: slower under concurrency, never wrong. Everything else is moto's own server (its WSGI app,
its request handler, `/moto-api/`, and IAM enforcement when INITIAL_NO_AUTH_ACTION_COUNT is set).
"""

import os
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def serialised(app):
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    return one_at_a_time


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        host,
        port,
        serialised(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
