"""The python-socketio peer of the P5-P7 benchmarks: the conversation node's flow without storage.

Several of these servers share one Redis (`AsyncRedisManager` on the channel `<prefix>`); server `index`
of `count` owns the conversations `c<k>` with `k % count == index`. The flow of one user action:
1. a client on any server emits `oh_user_action` `{action: "message", args: {content}}` with an ack;
2. that server publishes `{conversation_id, content}` on the owner's Redis channel `<prefix>:owner:<i>`
   (one PUBLISH), then acknowledges `{success: true}`;
3. the owner, subscribed to its channel, answers: `sio.emit("oh_event", answer, room=conversation_id)`,
   which `AsyncRedisManager` publishes on `<prefix>` to every server;
4. each server emits the answer to its clients in that room, among them the sender.
Clients join the room named by their connect query's `conversation_id`.

Usage: python sio_peer.py --port PORT --redis URL --prefix PREFIX --index I --count N
"""

import argparse
import asyncio
import json
from urllib.parse import parse_qs

import redis.asyncio as redis
import socketio
from aiohttp import web


def owner_of(conversation_id: str, count: int) -> int:
    return int(conversation_id.lstrip("c")) % count


def answer(content: str) -> dict:
    return {
        "source": "agent",
        "action": "message",
        "args": {"content": f'[python peer] I received your message: "{content}".'},
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()

    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=socketio.AsyncRedisManager(args.redis, channel=args.prefix),
    )
    publisher = redis.from_url(args.redis)

    @sio.event
    async def connect(sid, environ, auth):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        conversation = query.get("conversation_id", [""])[0]
        if not conversation.startswith("c"):
            raise socketio.exceptions.ConnectionRefusedError("missing conversation_id")
        await sio.save_session(sid, {"conversation": conversation})
        await sio.enter_room(sid, conversation)

    @sio.on("oh_user_action")
    async def user_action(sid, data):
        conversation = (await sio.get_session(sid))["conversation"]
        owner = owner_of(conversation, args.count)
        message = {"conversation_id": conversation, "content": data["args"]["content"]}
        await publisher.publish(f"{args.prefix}:owner:{owner}", json.dumps(message))
        return {"success": True}

    # Subscribed before listening, so that no action for this owner is published unheard.
    pubsub = publisher.pubsub()
    await pubsub.subscribe(f"{args.prefix}:owner:{args.index}")

    async def serve_owned() -> None:
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            action = json.loads(message["data"])
            await sio.emit("oh_event", answer(action["content"]), room=action["conversation_id"])

    app = web.Application()
    sio.attach(app)
    owned = asyncio.create_task(serve_owned())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    await owned


if __name__ == "__main__":
    asyncio.run(main())
