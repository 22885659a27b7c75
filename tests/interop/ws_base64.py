#!/usr/bin/env python3
"""ws_base64.py URL PASSWORD [SOURCE]: a WebSocket viewer as noVNC 0.4 (what
GWM ships) is one: it offers only the `base64` subprotocol, so every RFB byte
travels base64-encoded in text frames. Using the `websockets` library, it
checks the server chose `base64`, does the RFB 3.8 handshake with VNC
authentication (DES from vncdotool's rfb module, which vncdotool ships for
the same purpose; no crypto of our own), sends ClientInit and reads the
ServerInit. Prints it as JSON ({"version", "width", "height", "name"});
exits 1 with the reason on any failure.

With a `tcp://HOST:PORT` URL it is a native viewer (the same handshake on
the plain socket). SOURCE, when given, is the address it connects from
(loopback has all of 127.0.0.0/8: 127.0.0.2 is a second host)."""
import asyncio
import base64
import json
import socket
import struct
import sys
from urllib.parse import urlsplit

import websockets
from vncdotool.rfb import _vnc_des, des_encrypt


class Stream:
    """RFB bytes over base64 text frames."""

    def __init__(self, ws):
        self.ws = ws
        self.buf = b""

    async def read(self, n):
        while len(self.buf) < n:
            msg = await asyncio.wait_for(self.ws.recv(), 20)
            if not isinstance(msg, str):
                raise SystemExit(f"binary frame in a base64 session: {msg!r}")
            self.buf += base64.b64decode(msg)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    async def write(self, data):
        await self.ws.send(base64.b64encode(data).decode("ascii"))


class Plain:
    """RFB bytes on the socket itself (a native viewer)."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    async def read(self, n):
        return await asyncio.wait_for(self.reader.readexactly(n), 20)

    async def write(self, data):
        self.writer.write(data)
        await self.writer.drain()


async def handshake(s, password):
    version = await s.read(12)
    if not version.startswith(b"RFB 003."):
        raise SystemExit(f"not RFB: {version!r}")
    await s.write(b"RFB 003.008\n")
    (count,) = await s.read(1)
    types = await s.read(count)
    if count == 0:
        (n,) = struct.unpack(">I", await s.read(4))
        raise SystemExit(f"refused: {(await s.read(n)).decode(errors='replace')}")
    if 2 not in types:
        raise SystemExit(f"no VNC authentication offered: {types!r}")
    await s.write(b"\x02")
    challenge = await s.read(16)
    await s.write(des_encrypt(_vnc_des(password), challenge))
    (result,) = struct.unpack(">I", await s.read(4))
    if result != 0:
        (n,) = struct.unpack(">I", await s.read(4))
        raise SystemExit(f"authentication failed: {(await s.read(n)).decode(errors='replace')}")
    await s.write(b"\x01")  # ClientInit: shared
    width, height = struct.unpack(">HH", await s.read(4))
    await s.read(16)  # pixel format
    (n,) = struct.unpack(">I", await s.read(4))
    name = (await s.read(n)).decode(errors="replace")
    print(json.dumps({"version": version.decode().strip(), "width": width, "height": height, "name": name}))


async def main(url, password, source):
    where = urlsplit(url)
    bind = (source, 0) if source else None
    if where.scheme == "tcp":
        reader, writer = await asyncio.open_connection(where.hostname, where.port, local_addr=bind)
        await handshake(Plain(reader, writer), password)
        writer.close()
        return
    sock = socket.create_connection((where.hostname, where.port), timeout=20, source_address=bind)
    sock.setblocking(False)
    async with websockets.connect(url, sock=sock, subprotocols=["base64"], open_timeout=20) as ws:
        if ws.subprotocol != "base64":
            raise SystemExit(f"server chose subprotocol {ws.subprotocol!r}")
        await handshake(Stream(ws), password)


asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
