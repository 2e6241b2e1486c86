"""A Socket.IO client driven by a test: the official python-socketio AsyncClient, one process per client.

The same JSON lines as tests/js/sio-client.mjs:
  Usage: python3 sio_client.py <base url> '<options JSON>'
    options: {query: {...}, auth_token?, header_token?, transports?, reconnection?}
    transports: "websocket" (the default here), "polling", or "default" (the library's own default:
    long-polling first, then the upgrade to WebSocket).
  Prints one JSON line per happening: {type: "connect"|"connect_error"|"disconnect"|"oh_event"|"ack"|
  "transport", ...}. Reads one JSON command per line: {emit, data?, ack_id?}, {transport: true}, or
  {close: true}.
"""

import asyncio
import json
import sys
from urllib.parse import urlencode

import socketio

TRANSPORTS = {"websocket": ["websocket"], "polling": ["polling"], "default": None}


def out(line):
    print(json.dumps(line), flush=True)


async def main():
    url = sys.argv[1]
    options = json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}")
    query = {key: str(value) for key, value in (options.get("query") or {}).items()}
    client = socketio.AsyncClient(reconnection=options.get("reconnection", False))

    @client.event
    async def connect():
        out({"type": "connect", "id": client.sid, "transport": client.transport()})

    @client.event
    async def connect_error(data):
        message = data.get("message") if isinstance(data, dict) else data
        out({"type": "connect_error", "message": str(message)})

    @client.event
    async def disconnect(reason=None):
        out({"type": "disconnect", "reason": str(reason)})

    @client.on("oh_event")
    async def oh_event(data):
        # Like the web client: a reconnection asks for the events after the latest one received.
        if isinstance(data, dict) and isinstance(data.get("id"), int):
            latest = int(query.get("latest_event_id", "-1"))
            if data["id"] > latest:
                query["latest_event_id"] = str(data["id"])
        out({"type": "oh_event", "data": data})

    headers = {}
    if options.get("header_token"):
        headers["Authorization"] = f"Bearer {options['header_token']}"
    auth = {"token": options["auth_token"]} if options.get("auth_token") else None
    transports = TRANSPORTS[options.get("transports") or "websocket"]
    try:
        await client.connect(
            f"{url}?{urlencode(query)}",
            headers=headers,
            auth=auth,
            transports=transports,
            wait_timeout=20,
        )
    except socketio.exceptions.ConnectionError as error:
        out({"type": "connect_error", "message": str(error)})

    loop = asyncio.get_running_loop()
    pending = set()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        command = json.loads(line)
        if command.get("close"):
            await client.disconnect()
            continue
        if command.get("transport"):
            out({"type": "transport", "name": client.transport()})
            continue
        args = (command["data"],) if "data" in command else ()
        if "ack_id" not in command:
            await client.emit(command["emit"], *args)
            continue

        async def call(command=command, args=args):
            try:
                reply = await client.call(command["emit"], *args, timeout=30)
                out({"type": "ack", "ack_id": command["ack_id"], "data": reply})
            except Exception as error:  # noqa: BLE001 - reported to the test as the ack's error
                out({"type": "ack", "ack_id": command["ack_id"], "error": repr(error)})

        task = asyncio.create_task(call())
        pending.add(task)
        task.add_done_callback(pending.discard)
    await client.disconnect()


asyncio.run(main())
