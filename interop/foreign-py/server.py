#!/usr/bin/python3
"""A server of the rpcws protocol written in Python from the lesson's server shape.

The lesson is "Request-Response over WebSocket", the published lesson the protocol
comes from (see PROTOCOL.md). Here are its handle(ws, msg) and dispatch: a table of
methods keyed by request types, the request's id echoed back, an exception's class
name and text sent as the error's code and message. Nothing here comes from the
project's Go code; it follows PROTOCOL.md where the lesson leaves room (ids echoed as
the raw text that arrived, notifications, ParseError and BadRequest, the reference
services). The interop tests
run the conformance checks, the Go client and the JavaScript client against it.

    /usr/bin/python3 interop/foreign-py/server.py [--port 0]

Needs aiohttp (Debian: python3-aiohttp). It listens on 127.0.0.1, prints
"listening ws://127.0.0.1:PORT/rpc" on stdout once ready, and exits when stdin closes
(its parent went away) or on SIGINT/SIGTERM.

Besides the reference services (user.get, user.save, demo.echo, demo.sleep, demo.fail,
demo.ticks) it has methods that misbehave on purpose, for the client tests:
demo.never never replies, demo.late replies after a delay and then pushes
demo.late.sent, demo.chatty pushes events before its reply, demo.drop hangs up.
"""

import argparse
import asyncio
import json
import re
import signal
import sys

from aiohttp import WSMsgType, web

# PROTOCOL.md, "Frames": the limits this server documents, rpcws's own.
MAX_FRAME = 1 << 20  # bytes of a frame
MAX_TYPE = 256  # bytes of a request's type
MAX_ID = 1024  # bytes of a request's id, its raw JSON text


# Errors whose class name is the wire code, as the lesson's type(e).__name__.
class NotFound(Exception):
    pass


class MethodNotFound(Exception):
    pass


class InvalidParams(Exception):
    pass


class BadRequest(Exception):
    pass


class ParseError(Exception):
    pass


class TooLarge(Exception):
    pass


USERS = {"123": {"id": "123", "name": "Ada Lovelace"}}
CODE = re.compile(r"[A-Z][A-Za-z0-9]*\Z")


def fields(data, **kinds):
    """Reads the named fields of an object, each of the given Python type; absent
    fields are the type's zero value, as a decoder into a typed struct does."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidParams(f"want an object, got {json.dumps(data)}")
    out = []
    for name, kind in kinds.items():
        value = data.get(name, kind())
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            raise InvalidParams(f"{name} must be of type {kind.__name__}")
        out.append(value)
    return out


def in_range(name, value, high):
    if not 0 <= value <= high:
        raise InvalidParams(f"{name} {value} is out of range 0..{high}")
    return value


async def user_get(data, ctx):
    (uid,) = fields(data, id=str)
    if uid not in USERS:
        raise NotFound(f"user {uid!r} not found")
    return USERS[uid]


async def user_save(data, ctx):
    uid, name = fields(data, id=str, name=str)
    if not uid:
        raise InvalidParams("a user needs an id")
    USERS[uid] = {"id": uid, "name": name}
    return USERS[uid]


async def demo_echo(data, ctx):
    return data


async def demo_sleep(data, ctx):
    (ms,) = fields(data, ms=int)
    await asyncio.sleep(in_range("ms", ms, 60000) / 1000)
    return {"ms": ms}


async def demo_fail(data, ctx):
    code, message = fields(data, code=str, message=str)
    if not CODE.match(code):
        raise InvalidParams(f"{code!r} is not an UpperCamelCase word")
    raise type(code, (Exception,), {})(message)


async def demo_ticks(data, ctx):
    count, interval = fields(data, count=int, intervalMs=int)
    in_range("count", count, 1000)
    in_range("intervalMs", interval, 60000)

    async def ticks():
        for n in range(1, count + 1):
            await asyncio.sleep(interval / 1000)
            await ctx.push("demo.tick", {"n": n})

    ctx.after_reply(ticks)
    return {"count": count}


async def demo_never(data, ctx):
    await asyncio.Event().wait()


async def demo_late(data, ctx):
    (ms,) = fields(data, ms=int)
    await asyncio.sleep(ms / 1000)

    async def sent():
        await ctx.push("demo.late.sent", {"ms": ms})

    ctx.after_reply(sent)
    return {"ms": ms}


async def demo_chatty(data, ctx):
    (count,) = fields(data, count=int)
    for n in range(1, count + 1):
        await ctx.push("demo.chat", {"n": n})
    return {"count": count}


async def demo_drop(data, ctx):
    ctx.hang_up()
    await asyncio.Event().wait()


METHODS = {
    "user.get": user_get,
    "user.save": user_save,
    "demo.echo": demo_echo,
    "demo.sleep": demo_sleep,
    "demo.fail": demo_fail,
    "demo.ticks": demo_ticks,
    "demo.never": demo_never,
    "demo.late": demo_late,
    "demo.chatty": demo_chatty,
    "demo.drop": demo_drop,
}


async def dispatch(typ, data, ctx):
    # PROTOCOL.md, "Names": the first letter of each part is not significant.
    key = ".".join(part[:1].lower() + part[1:] for part in typ.split("."))
    method = METHODS.get(key)
    if method is None:
        raise MethodNotFound(f"{typ!r} names no method")
    return await method(data, ctx)


class Conn:
    """One WebSocket: its frames are written one at a time."""

    def __init__(self, ws, request):
        self.ws = ws
        self.request = request
        self.lock = asyncio.Lock()

    async def send(self, text):
        async with self.lock:
            if not self.ws.closed:
                await self.ws.send_str(text)

    async def send_json(self, frame):
        """Writes the frame's fields in the order given; a raw id goes in as it came.
        A reply over the frame limit raises TooLarge, and nothing is written."""
        parts = []
        for key, value in frame.items():
            text = value.text if isinstance(value, Raw) else json.dumps(value)
            parts.append(f"{json.dumps(key)}: {text}")
        text = "{" + ", ".join(parts) + "}"
        if len(text.encode()) > MAX_FRAME:
            raise TooLarge(f"the frame would be over {MAX_FRAME} bytes")
        await self.send(text)


class Raw:
    """JSON text to be written as it is."""

    def __init__(self, text):
        self.text = text


class Context:
    def __init__(self, conn):
        self.conn = conn
        self.later = []

    async def push(self, typ, data):
        await self.conn.send_json({"type": typ, "data": data})

    def after_reply(self, fn):
        self.later.append(fn)

    def hang_up(self):
        self.conn.request.transport.close()


_WS = re.compile(r"[ \t\n\r]*")


def raw_members(text):
    """The raw text of each top-level member of a JSON object (the last of a repeated
    name, as json.loads keeps). text must already parse as an object."""
    dec = json.JSONDecoder()
    i = _WS.match(text, text.index("{") + 1).end()
    out = {}
    while text[i] != "}":
        key, i = dec.raw_decode(text, i)
        i = _WS.match(text, _WS.match(text, i).end() + 1).end()  # past the colon
        _, j = dec.raw_decode(text, i)
        out[key] = text[i:j]
        i = _WS.match(text, j).end()
        if text[i] == ",":
            i = _WS.match(text, i + 1).end()
    return out


def read_frame(text):
    try:
        msg = json.loads(text)
    except ValueError as e:
        raise ParseError(f"not JSON: {e}")
    if not isinstance(msg, dict):
        raise ParseError(f"want a JSON object, got a {type(msg).__name__}")
    return msg, raw_members(text).get("id")


# The lesson's handle(ws, msg), one per frame; rid is the raw text of the id, or None.
async def handle(ws, msg, rid):
    typ = msg.get("type")
    data = msg.get("data")
    ctx = Context(ws)
    try:
        if not isinstance(typ, str) or typ == "":
            raise BadRequest("a request needs a type: a non-empty string")
        if len(typ.encode()) > MAX_TYPE:
            raise BadRequest(f"type is longer than {MAX_TYPE} bytes")
        result = await dispatch(typ, data, ctx)
        if rid is None:
            return  # a notification: nothing goes back
        await ws.send_json({"id": Raw(rid), "type": f"{typ}.response", "data": result})
    except Exception as e:
        if rid is None:
            print(f"notification {typ!r}: {type(e).__name__}: {e}", file=sys.stderr)
            return
        await ws.send_json({"id": Raw(rid), "type": "error", "code": type(e).__name__, "message": str(e)})
    for fn in ctx.later:
        spawn(fn())


TASKS = set()


def spawn(coro):
    """Runs coro on its own; a connection's requests are served concurrently."""
    task = asyncio.get_running_loop().create_task(coro)
    TASKS.add(task)
    task.add_done_callback(TASKS.discard)
    return task


async def serve(request):
    ws = web.WebSocketResponse(max_msg_size=MAX_FRAME)
    await ws.prepare(request)
    conn = Conn(ws, request)
    async for frame in ws:
        if frame.type == WSMsgType.TEXT:
            try:
                msg, rid = read_frame(frame.data)
            except ParseError as e:
                await conn.send_json({"type": "error", "code": "ParseError", "message": str(e)})
                continue
            if rid == "null":
                rid = None
            if rid is not None and len(rid.encode()) > MAX_ID:
                # Not echoed: nothing of the request is kept.
                await conn.send_json({"type": "error", "code": "BadRequest", "message": f"id is longer than {MAX_ID} bytes"})
                continue
            spawn(handle(conn, msg, rid))
        elif frame.type == WSMsgType.BINARY:
            await conn.send_json({"type": "error", "code": "ParseError", "message": "binary frame"})
    return ws


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    app = web.Application()
    app.router.add_get("/rpc", serve)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"listening ws://127.0.0.1:{port}/rpc", flush=True)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # stdin closing means the parent went away.
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.buffer.read1(1 << 16) or stop.set())
    await stop.wait()
    loop.remove_reader(sys.stdin.fileno())
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
