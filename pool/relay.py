"""The replica agent: relays request frames to an app's own HTTP server on 127.0.0.1:PORT in its container.

An isolated replica (a route's `isolated: {image, port}`) runs the user's image as it is, its command
included, locked down like a handler container (no network but `lo`). The gateway reaches the app only
through this agent, started once per container through one long-lived exec (as `pool.agent` is): no port
is published. Its source travels on the exec's command line (`BOOTSTRAP`), so the image needs a python3
(3.8 or later) and nothing of isogate's. Standard library only.

The agent waits until the app accepts connections (the container is ready only then), reports ready, and
for each request frame sends the request over one keep-alive connection (a new one when the app closed
it) and answers with the app's status, headers and body, the body bounded by MAX_RESPONSE_BYTES. It
passes what the gateway framed as it is: the gateway removed the hop-by-hop headers and set the framing.
The app is one long-lived process, shared state no per-request fork could clean: the gateway's pool gives
each replica container to one caller for its whole life (see pool.containers, `exclusive`).
"""

from __future__ import annotations

import http.client
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from pool.frames import READY, encode, serve_frames, write_all

POLL_S = 0.02  # between connection attempts while the app starts
# What a reused connection raises when the app had closed it while idle: sent again on a new one.
STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)

# `python3 -c BOOTSTRAP FRAMES_SOURCE RELAY_SOURCE PORT MAX_RESPONSE_BYTES`: the two modules are made from
# their source text, then the relay runs. Nothing is written to the (read-only) image.
BOOTSTRAP = """import sys, types
sys.modules["pool"] = types.ModuleType("pool")
for name, source in (("pool.frames", sys.argv[1]), ("pool.relay", sys.argv[2])):
    module = sys.modules[name] = types.ModuleType(name)
    exec(compile(source, name.replace(".", "/") + ".py", "exec"), module.__dict__)
sys.modules["pool.relay"].main(sys.argv[3:])
"""


def command(port: int, max_response: int) -> list[str]:
    """The exec's command line for a replica container's agent."""
    here = Path(__file__).parent
    sources = [(here / name).read_text(encoding="utf-8") for name in ("frames.py", "relay.py")]
    return ["python3", "-c", BOOTSTRAP, *sources, str(port), str(max_response)]


class Relay:
    def __init__(self, port: int, max_response: int) -> None:
        self.port, self.max_response = port, max_response
        self.connection = http.client.HTTPConnection("127.0.0.1", port)

    def serve(self, header: dict[str, Any], body: bytes) -> bytes:
        """The app's answer to one request frame, as a response frame; failures as error frames."""
        for _ in range(2):
            reused = self.connection.sock is not None
            try:
                return self.exchange(header, body)
            except STALE:
                self.connection.close()
                if not reused:
                    return crashed("the app closed the connection without answering")
            except OSError as exc:  # refused, reset (no exception's name goes to the client)
                self.connection.close()
                refused = isinstance(exc, ConnectionRefusedError)
                return crashed("the app refused the connection" if refused else "the app's connection failed")
            except (http.client.HTTPException, ValueError):
                self.connection.close()
                return crashed("the app's answer was malformed")
        return crashed("the app closed two connections without answering")

    def exchange(self, header: dict[str, Any], body: bytes) -> bytes:
        connection = self.connection
        connection.putrequest(header["method"], header["path"], skip_host=True, skip_accept_encoding=True)
        for name, value in header["headers"]:  # as the gateway decoded them: UTF-8, undecodable bytes escaped
            connection.putheader(name, value.encode("utf-8", "surrogateescape"))
        connection.endheaders(body or None)
        response = connection.getresponse()
        data = response.read(self.max_response + 1)
        if len(data) > self.max_response:
            connection.close()  # the rest is never read
            return encode({"error": "too_large", "detail": f"response over {self.max_response} bytes"})
        # http.client reads header bytes as Latin-1; the gateway's side takes them as UTF-8 (the same
        # bytes, as aiohttp decodes a header it reads).
        headers = [
            (k, v.encode("iso-8859-1").decode("utf-8", "surrogateescape")) for k, v in response.getheaders()
        ]
        return encode({"status": response.status, "headers": headers}, data)


def crashed(detail: str) -> bytes:
    return encode({"error": "crashed", "detail": detail})


def wait_for(port: int) -> None:
    """Until the app accepts a connection on 127.0.0.1:`port` (the gateway bounds the wait)."""
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(POLL_S)


def main(argv: list[str]) -> None:
    port, max_response = int(argv[0]), int(argv[1])
    frames_out = os.dup(1)
    os.dup2(2, 1)  # print() goes to stderr, never into the frame stream
    wait_for(port)
    relay = Relay(port, max_response)
    write_all(frames_out, encode({**READY, "pid": os.getpid()}))
    serve_frames(sys.stdin.buffer, frames_out, relay.serve)
