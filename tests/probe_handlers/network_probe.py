"""Lists the network interfaces it can see and tries a TCP connection to 127.0.0.1:`?port=`."""

import socket

from handlers import Request


def handle(request: Request) -> dict[str, object]:
    port = int(request.arg("port", "9") or 9)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            connect = "connected"
    except OSError as exc:
        connect = type(exc).__name__
    return {"interfaces": sorted(name for _, name in socket.if_nameindex()), "connect": connect}
