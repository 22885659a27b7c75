#!/usr/bin/env python3
"""Writes the seeds of the fuzz targets to fuzz/seeds/<target>/.

Seeds come from the real recorded fixtures under tests/fixtures/ (tagged hex
`C:`/`S:` lines: the viewer's or the server's byte stream, with the
challenge and password of the fixture's header) plus a few hand-made ones
(GWM and snf control requests, their replies, the Flash policy request).
Each seed is laid out as its target reads it (see fuzz/src/lib.rs and the
target's doc comment): `[splits] [target parameters] [the peer's bytes]`.
The big WebSocket message of the ws fixtures (70 000 bytes) is left out of
whole-stream seeds and kept once, cut to 20 000 bytes.

The corpus a campaign grew from them, minimised, is fuzz/corpus/<target>/
(fuzz/campaign.sh); fuzz/run.sh starts from both.

Usage: python3 fuzz/seed.py   (rewrites fuzz/seeds/ from scratch)
"""

import hashlib
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
CORPUS = os.path.join(ROOT, "fuzz", "seeds")

WHOLE = b"\x00"  # no splits: read everything at once
BYTEWISE = b"\x01\x00"  # reads of 1 byte
MIXED = b"\x03\x00\x04\x0b"  # reads of 1, 5, 12 bytes


def load(path):
    """(header dict, [(dir, bytes)]) of a fixture, as tests/src/fixture.rs reads it."""
    header, records = {}, []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                if ":" in line:
                    k, v = line[1:].split(":", 1)
                    header[k.strip()] = v.strip()
                continue
            d, hexs = line.split(":", 1)
            b = bytes.fromhex(hexs)
            if records and records[-1][0] == d:
                records[-1] = (d, records[-1][1] + b)
            else:
                records.append((d, b))
    return header, records


def stream(records, d):
    return b"".join(b for (x, b) in records if x == d)


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def counted(b):
    assert len(b) < 256
    return bytes([len(b)]) + b


def client_frames(data):
    """Splits a stream of masked client frames into (header+payload) frames."""
    frames, i = [], 0
    while i + 2 <= len(data):
        b1 = data[i + 1]
        n, h = b1 & 0x7F, 2
        if n == 126:
            n, h = struct.unpack(">H", data[i + 2 : i + 4])[0], 4
        elif n == 127:
            n, h = struct.unpack(">Q", data[i + 2 : i + 10])[0], 10
        h += 4 if b1 & 0x80 else 0
        frames.append(data[i : i + h + n])
        i += h + n
    return frames


def rfb():
    d = os.path.join(FIXTURES, "rfb")
    for name in sorted(os.listdir(d)):
        if not name.endswith(".txt"):
            continue
        header, records = load(os.path.join(d, name))
        base = name[: -len(".txt")]
        challenge = bytes.fromhex(header.get("challenge", "00" * 16))
        password = header.get("password", "secret").encode()
        viewer = stream(records, "C")
        for splits, tag in [(WHOLE, ""), (BYTEWISE, "-bytewise"), (MIXED, "-mixed")]:
            write("rfb_server", base + tag, splits + b"\x00" + challenge + counted(password) + viewer)
        write("rfb_server", base + "-reject", WHOLE + b"\x02" + challenge + counted(password) + viewer)
        write("rfb_server", base + "-refusing", WHOLE + b"\x01" + challenge + counted(b"console expired") + viewer)
        server = stream(records, "S")
        server_password = header.get("server-password", "secret").encode()
        for splits, tag in [(WHOLE, ""), (BYTEWISE, "-bytewise")]:
            write("rfb_client", base + tag, splits + b"\x06" + counted(server_password) + server)
        write("rfb_client", base + "-nopassword", WHOLE + b"\x07" + counted(b"") + server)
        write("rfb_client", base + "-max33", WHOLE + b"\x00" + counted(server_password) + server)
    # A viewer choosing VeNCrypt X509Vnc (then a response, inside TLS), with
    # VeNCrypt offered beside VNC auth (flags bit 3) and alone (bit 4).
    vencrypt_viewer = b"RFB 003.008\n\x13\x00\x02\x00\x00\x01\x05" + bytes(range(16)) + b"\x01"
    for flags, tag in [(b"\x08", "-and-vncauth"), (b"\x10", "-only")]:
        for splits, stag in [(WHOLE, ""), (BYTEWISE, "-bytewise")]:
            write("rfb_server", "vencrypt-x509vnc" + tag + stag, splits + flags + bytes(16) + counted(b"secret") + vencrypt_viewer)
    # VeNCrypt logins to QEMU (RFB before the TLS hand-off, then the
    # plaintext inside TLS): backend TLS preferred (flags bit 4) and required.
    d = os.path.join(FIXTURES, "rfb", "vencrypt")
    for name in sorted(os.listdir(d)):
        if not name.endswith(".txt"):
            continue
        header, records = load(os.path.join(d, name))
        base = "vencrypt-" + name[: -len(".txt")]
        server = stream(records, "S")
        password = header.get("password", "").encode()
        for splits, tag in [(WHOLE, ""), (BYTEWISE, "-bytewise")]:
            write("rfb_client", base + tag, splits + b"\x16" + counted(password) + server)
        write("rfb_client", base + "-required", WHOLE + b"\x26" + counted(password) + server)
        write("rfb_client", base + "-off", WHOLE + b"\x06" + counted(password) + server)


# PROXY protocol headers as HAProxy's send-proxy / send-proxy-v2 write them
# (a client 192.0.2.7:56324 that reached 203.0.113.1:7000), and a v2 LOCAL
# (a health check).
PROXY_V1 = b"PROXY TCP4 192.0.2.7 203.0.113.1 56324 7000\r\n"
PROXY_V2 = (
    b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x11"
    + bytes([192, 0, 2, 7, 203, 0, 113, 1])
    + struct.pack(">HH", 56324, 7000)
    + b"\x05\x00\x02\xab\xcd"
)
PROXY_V2_LOCAL = b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"


def entry():
    """The entry target: vncap's recordings of real viewers (the RFB they
    sent after WebSocket), natively and each message in a masked frame
    after an upgrade, on every kind of door."""
    d = os.path.join(FIXTURES, "rfb", "interop")
    upgrade = (
        b"GET /websockify HTTP/1.1\r\nHost: vncap\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n"
    )
    for name in sorted(os.listdir(d)):
        if not name.endswith("-viewer.txt"):
            continue
        header, records = load(os.path.join(d, name))
        base = name[: -len("-viewer.txt")]
        challenge = stream(records, "S")[14:30]
        password = header["password"].encode()
        native = stream(records, "C")
        framed = upgrade
        for i, (x, b) in enumerate(records):
            if x == "C":
                mask = bytes([i & 0xFF, 0x5A, 0xA5, 7])
                framed += bytes([0x82, 0x80 | len(b)]) + mask + bytes(c ^ mask[j % 4] for j, c in enumerate(b))
        params = challenge + counted(password)
        write("entry", base + "-native", WHOLE + b"\x00" + params + native)
        write("entry", base + "-native-bytewise", BYTEWISE + b"\x00" + params + native)
        write("entry", base + "-sniffed", WHOLE + b"\x09" + params + native)
        write("entry", base + "-ws", WHOLE + b"\x01" + params + framed)
        write("entry", base + "-ws-mixed", MIXED + b"\x02" + params + framed)
        write("entry", base + "-ws-reject", WHOLE + b"\x12" + params + framed)
        # Behind a trusted proxy (flags bit 6): its PROXY header first.
        write("entry", base + "-proxied-native", MIXED + b"\x40" + params + PROXY_V2 + native)
        write("entry", base + "-proxied-ws", WHOLE + b"\x41" + params + PROXY_V1 + framed)
        # From anyone else a PROXY header is refused.
        write("entry", base + "-forged-native", WHOLE + b"\x00" + params + PROXY_V2 + native)
    write("entry", "policy", WHOLE + b"\x01" + b"\x00" * 16 + counted(b"pw") + b"<policy-file-request/>\x00")
    # The single port from a trusted proxy: X-Forwarded-For and Forwarded
    # name the client (the token is unknown: refused after the client).
    forwarded = upgrade.replace(b"GET /websockify ", b"GET /websockify?token=x ").replace(
        b"\r\n\r\n",
        b"\r\nX-Forwarded-For: 198.51.100.1, 192.0.2.7\r\nForwarded: for=192.0.2.7;proto=https\r\n\r\n",
    )
    write("entry", "single-forwarded", WHOLE + b"\x43" + b"\x00" * 16 + counted(b"pw") + forwarded)
    write("entry", "single-proxied-forwarded", BYTEWISE + b"\x43" + b"\x00" * 16 + counted(b"pw") + PROXY_V2_LOCAL + forwarded)
    write("entry", "proxied-tls-hello", WHOLE + b"\x45" + b"\x00" * 16 + counted(b"pw") + PROXY_V1 + b"\x16\x03\x01\x02\x00\x01")
    write("entry", "proxied-junk", WHOLE + b"\x40" + b"\x00" * 16 + counted(b"pw") + b"PROXY TCP4 192.0.2.7 x 1 2\r\n")
    write("entry", "tls-hello", WHOLE + b"\x05" + b"\x00" * 16 + counted(b"pw") + b"\x16\x03\x01\x02\x00\x01")
    # The single port with a web root (flags 0x43): a page, and a console.
    page = b"GET /vnc.html?path=websockify HTTP/1.1\r\nHost: vncap\r\n\r\n"
    write("entry", "web-page", WHOLE + b"\x83" + b"\x00" * 16 + counted(b"pw") + page)
    write("entry", "web-missing", MIXED + b"\x93" + b"\x00" * 16 + counted(b"pw") + page)
    write("entry", "web-upgrade", WHOLE + b"\x83" + b"\x00" * 16 + counted(b"pw") + upgrade)
    # A viewer that does not wait for vncap's ProtocolVersion: the upgrade
    # and a first frame longer than the machine's RFB buffer (256) in one
    # read; split and whole must agree (a whole read once lost the first
    # piece and stalled). The fuzz case's shape: 3,341 bytes announced, 262
    # sent, not RFB; and ProtocolVersion leading 300 bytes.
    def long_frame(payload, announced):
        mask = b"\x0d" * 4
        body = bytes(c ^ mask[j % 4] for j, c in enumerate(payload))
        return b"\x82\xfe" + announced.to_bytes(2, "big") + mask + body
    cut = upgrade + long_frame(b"\x00" * 262, 3341)
    write("entry", "ws-pipelined-not-rfb", MIXED + b"\x15" + b"\x00" * 16 + counted(b"pw") + cut)
    version = upgrade + long_frame(b"RFB 003.008\n" + b"\x02" * 300, 312)
    write("entry", "ws-pipelined-version", WHOLE + b"\x01" + b"\x00" * 16 + counted(b"pw") + version)
    write("entry", "ws-pipelined-version-mixed", MIXED + b"\x01" + b"\x00" * 16 + counted(b"pw") + version)
    # A ping flood on a WebSocket-only port (flags 0x02) before the login,
    # then a fragmented ping (a bad control frame): the pongs must be the
    # same in any reads (a whole read once got fewer: the pongs' allowance
    # was the queue's room, which the driver's sending frees).
    def ping(i):
        mask = b"\x0d" * 4
        return b"\x89\x89" + mask + bytes([i ^ 0x0d]) * 9
    flood = upgrade + b"".join(ping(i) for i in range(100)) + b"\x09\x80" + b"\x0d" * 4
    write("entry", "ws-ping-flood", MIXED + b"\x02" + b"\x00" * 16 + counted(b"pw") + flood)


def web():
    """The web target: what noVNC's page loads, and the traversal attempts
    the module refuses."""
    get = lambda target: b"GET " + target + b" HTTP/1.1\r\nHost: vnc.example.org:6080\r\nAccept: */*\r\n\r\n"
    chrome = (
        b"GET /vnc.html?host=vnc.example.org&port=6080&path=websockify%3Ftoken%3Dabc HTTP/1.1\r\n"
        b"Host: vnc.example.org:6080\r\nConnection: keep-alive\r\nUpgrade-Insecure-Requests: 1\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/140.0.0.0 Safari/537.36\r\n"
        b"Accept: text/html,application/xhtml+xml\r\nAccept-Encoding: gzip, deflate\r\n"
        b"Accept-Language: en-US,en;q=0.9\r\n\r\n"
    )
    write("web", "chrome-page", WHOLE + b"\x00" + chrome)
    write("web", "chrome-page-bytewise", BYTEWISE + b"\x00" + chrome)
    write("web", "module", MIXED + b"\x00" + get(b"/core/rfb.js"))
    # A C1 control character (U+008E) in the path, raw: 404 (fuzz campaign).
    write("web", "c1-control", WHOLE + b"\x00" + get(b"/c\xd2\x8em\xc2\x8eb"))
    write("web", "root-index", WHOLE + b"\x04" + get(b"/"))
    write("web", "missing", WHOLE + b"\x02" + get(b"/app/nope.js"))
    write("web", "head", WHOLE + b"\x00" + b"HEAD /app/styles/base.css HTTP/1.0\r\n\r\n")
    write("web", "post", WHOLE + b"\x00" + b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
    write("web", "upgrade", WHOLE + b"\x00" + b"GET /websockify HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    write("web", "small-limit", WHOLE + b"\x01" + chrome)
    for i, target in enumerate([b"/%2e%2e/etc/passwd", b"/..%2f..%2f", b"//evil.example", b"/%2fevil", b"/a%5cb", b"/a%00", b"/%zz", b"/.git/HEAD"]):
        write("web", "refused-%d" % i, WHOLE + b"\x00" + get(target))


def proxy():
    """The proxy target: HAProxy's send-proxy (v1) and send-proxy-v2 headers,
    with a client's first bytes behind them."""
    v2 = bytes.fromhex("0d0a0d0a000d0a515549540a") + bytes([0x21, 0x11, 0, 12])
    v2 += bytes([192, 0, 2, 7, 203, 0, 113, 1]) + struct.pack(">HH", 56324, 6080)
    v6 = bytes.fromhex("0d0a0d0a000d0a515549540a") + bytes([0x21, 0x21, 0, 36])
    v6 += bytes.fromhex("20010db8000000000000000000000007" "20010db8000000000000000000000001")
    v6 += struct.pack(">HH", 4000, 443)
    local = bytes.fromhex("0d0a0d0a000d0a515549540a") + bytes([0x20, 0, 0, 0])
    write("proxy", "v1-tcp4", b"PROXY TCP4 192.0.2.7 203.0.113.1 56324 6080\r\nGET / HTTP/1.1\r\n")
    write("proxy", "v1-tcp6", b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 443\r\n")
    write("proxy", "v1-unknown", b"PROXY UNKNOWN\r\n")
    write("proxy", "v2-tcp4", v2 + b"GET /")
    write("proxy", "v2-tcp6", v6)
    write("proxy", "v2-local", local + b"RFB 003.008\n")


def metrics():
    """The metrics target: a Prometheus scrape, and what else may knock."""
    write("metrics", "scrape", b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nUser-Agent: Prometheus/2.45.0\r\nAccept: text/plain;version=0.0.4\r\n\r\n")
    write("metrics", "root", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    write("metrics", "post", b"POST /metrics HTTP/1.0\r\n\r\n")


def ws():
    d = os.path.join(FIXTURES, "ws")
    for name in sorted(os.listdir(d)):
        if not name.endswith(".txt"):
            continue
        header, records = load(os.path.join(d, name))
        base = name[: -len(".txt")]
        client = stream(records, "C")
        end = client.index(b"\r\n\r\n") + 4
        request, frames = client[:end], client_frames(client[end:])
        small = [f for f in frames if len(f) <= 4096]
        big = [f for f in frames if len(f) > 4096]
        write("ws_handshake", base, WHOLE + b"\x00" + b"\x00\x00" + request + b"".join(small[:1]))
        write("ws_handshake", base + "-mixed", MIXED + b"\x00" + b"\x00\x00" + request)
        write("ws_handshake", base + "-reject404", WHOLE + b"\x04" + b"\x01\x94" + request)
        write("ws_handshake", base + "-origins", WHOLE + b"\x01" + b"\x00\x00" + request)
        sub = {"base64": 2, "binary": 1}.get(header.get("subprotocol", ""), 0)
        write("ws_frame", base, WHOLE + bytes([sub]) + b"".join(small))
        write("ws_frame", base + "-mixed", MIXED + bytes([sub]) + b"".join(small))
        write("ws_frame", base + "-window16k", WHOLE + bytes([sub | 4]) + b"".join(small))
        write("ws_frame", base + "-max1000", WHOLE + bytes([sub | 8 | 16]) + b"".join(small))
        for i, f in enumerate(small):
            write("ws_frame", "%s-frame%d" % (base, i), WHOLE + bytes([sub]) + f)
        for f in big[:1]:
            write("ws_frame", base + "-big-cut", WHOLE + bytes([sub | 4]) + f[:20000])
    # Hand-made requests: a noVNC 1.x one with an Origin, wrong method, old version.
    req = (
        b"GET /websockify?token=0123456789abcdef0123456789abcdef HTTP/1.1\r\n"
        b"Host: 127.0.0.1:8443\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
        b"Origin: http://127.0.0.1:8000\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    write("ws_handshake", "novnc-origin", WHOLE + b"\x01\x00\x00" + req)
    write("ws_handshake", "post", WHOLE + b"\x00\x00\x00" + req.replace(b"GET", b"POST", 1))
    write("ws_handshake", "version8", WHOLE + b"\x00\x00\x00" + req.replace(b"Version: 13", b"Version: 8"))
    forwarded = b"X-Forwarded-For: 198.51.100.1, 192.0.2.7\r\nForwarded: for=\"[2001:db8::7]:4711\";proto=https\r\n\r\n"
    write("ws_handshake", "forwarded", WHOLE + b"\x00\x00\x00" + req[:-2] + forwarded)


CONTROL = {
    "gwm": b'{"daddr": "node1.example.org", "dport": 12001, "password": "Ab3dE6gH", "ws": true, "tls": false}\r\n',
    "gwm-min": b'{"daddr": "10.0.0.1", "dport": 5900, "password": "p"}\n',
    "gwm-client": b'{"daddr": "h", "dport": 5900, "password": "p", "sport": 7001, "timeout": 60, '
    b'"client": {"ip": "127.0.0.1", "password": "viewer"}}\n',
    "snf": b'{"source_port": 0, "destination_address": "node1", "destination_port": 5900, '
    b'"password": "pw", "type": "vnc-ws"}',
    "snf-auth": b'{"source_port": 7002, "destination_address": "::1", "destination_port": 5901, '
    b'"auth_user": "synnefo", "auth_password": "s3cret", "type": "vnc-wss"}\r\n',
    "mixed": b'{"daddr": "h", "destination_port": 1}\n',
    "escapes": b'{"daddr": "n\\u00e9ud\\n", "dport": 5900, "password": "\\"\\\\", "x": [[{}]]}\n',
    "not-json": b"hello\n",
    "action-list": b'{"action": "list"}\n',
    "action-kill-id": b'{"action": "kill", "id": 7}\n',
    "action-kill-backend": b'{"action": "kill", "backend": "[2001:db8::1]:5900"}',
    "action-stats": b'{"action": "stats"}\r\n',
    "action-mixed": b'{"action": "list", "daddr": "h"}\n',
    "raw-control": b'{"daddr": "h\x01", "dport": 1, "password": "\\u0000"}\n',
}

REPLIES = {
    "port": (0, b"7000\n"),
    "port-crlf": (0, b"7001\r\n"),
    "failed": (0, b"FAILED\n"),
    "failed-reason": (0, b"FAILED no free port in the pool\n"),
    "snf-ok": (1, b'{"status": "OK", "source_port": 7000, "proxy_address": "vnc.example.org"}\n'),
    "snf-ok-ext": (
        1,
        b'{"status": "OK", "source_port": 8443, "proxy_address": "vnc.example.org", "password": "Ab3dE6gH", '
        b'"expires_in": 30, "token": "0123456789abcdef0123456789abcdef", '
        b'"url_path": "websockify?token=0123456789abcdef0123456789abcdef"}\n',
    ),
    "snf-failed": (1, b'{"status": "FAILED", "source_port": 0, "proxy_address": "", "reason": "console \\u001b expired"}'),
    "list": (
        2,
        b'{"status": "OK", "sessions": [{"id": 7, "backend": "node1:5900", "viewer": "192.0.2.1:50000", '
        b'"door": "single", "transport": "vnc-wss", "started": 1700000000, "bytes_to_viewer": 1, '
        b'"bytes_to_backend": 2}], "tickets": [{"id": 8, "backend": "[::1]:5901", "port": 7000, "expires_in": 30}]}\n',
    ),
    "list-failed": (2, b'{"status": "FAILED", "reason": "not supported yet"}\n'),
    "killed": (4, b'{"status": "OK", "killed": 2}\n'),
    "stats": (
        6,
        b'{"status": "OK", "vncap_sessions_active": 1, "vncap_tickets_pending": 2, '
        b'"vncap_tickets_issued_total": 3, "vncap_tickets_expired_total": 4, "vncap_logins_total": '
        b'{"ok": 5, "wrong_password": 6, "backend_unreachable": 7, "backend_refused": 8, "refused": 9}, '
        b'"vncap_bytes_total": {"to_viewer": 10, "to_backend": 11}, '
        b'"vncap_control_requests_total": {"ok": 12, "failed": 13}}\n',
    ),
}


def control():
    for name, line in CONTROL.items():
        write("control", name, WHOLE + b"\x00" + b"\x1b\x58" + line)
        write("control", name + "-eof-ext", WHOLE + b"\x05" + b"\x1b\x58" + line.rstrip(b"\r\n"))
        write("control", name + "-failed-mixed", MIXED + b"\x02" + b"\x1b\x58" + line)
    # Flags 0x08: from a trusted proxy (a PROXY header, or none, first);
    # 0x10: TLS (the driver starts it at the first byte, then plaintext).
    gwm = next(iter(CONTROL.values()))
    write("control", "proxied-v1", MIXED + b"\x08" + b"\x1b\x58" + PROXY_V1 + gwm)
    write("control", "proxied-v2-local", WHOLE + b"\x09" + b"\x1b\x58" + PROXY_V2_LOCAL + gwm)
    write("control", "proxied-none", WHOLE + b"\x08" + b"\x1b\x58" + gwm)
    write("control", "proxied-junk", WHOLE + b"\x08" + b"\x1b\x58" + b"PROXY TCP4 x\r\n" + gwm)
    write("control", "tls", MIXED + b"\x10" + b"\x1b\x58" + gwm)
    write("control", "proxied-tls-eof", WHOLE + b"\x19" + b"\x1b\x58" + PROXY_V1 + gwm.rstrip(b"\r\n"))
    for name, (dialect, reply) in REPLIES.items():
        write("control_reply", name, bytes([dialect]) + reply)


def policy():
    req = b"<policy-file-request/>\0"
    write("policy", "request", WHOLE + counted(b"*") + b"\x1b\x58\x1f\x40" + req)
    write("policy", "request-bytewise", BYTEWISE + counted(b"*.example.org") + b"\x1b\x58\x1b\x58" + req)
    write("policy", "request-trailing", MIXED + counted(b"*") + b"\x1b\x58\x1f\x40" + req + b"GET / HTTP/1.1\r\n")


def sniff():
    _, records = load(os.path.join(FIXTURES, "sniff", "tls-clienthello.txt"))
    write("sniff", "tls-clienthello", stream(records, "C")[:64])
    for name, b in {
        "http": b"GET /websockify HTTP/1.1\r\n",
        "options": b"OPTIONS * HTTP/1.1\r\n",
        "policy": b"<policy-file-request/>\0",
        "rfb": b"RFB 003.008\n",
    }.items():
        write("sniff", name, b)


def ticket():
    rnd = hashlib.sha512(b"vncap fuzz seed").digest()  # 64 bytes
    issue = lambda f, pref, timeout: b"\x00" + bytes([f, pref, timeout]) + rnd
    seqs = {
        # config: 2 ports, 2 attempts; issue, look up, authenticate, end.
        "life": b"\x05\x00" + issue(0, 0, 0) + b"\x01\x00\x00" + b"\x03\x00" + b"\x05\x00",
        # expiry: issue with 2 s, step 3 s, handle_timeout.
        "expiry": b"\x01\x00" + issue(0, 1, 1) + b"\x06\x01\x2c" + b"\x07",
        # single-port: snf websocket ticket with a generated password, token lookup.
        "token": b"\x13\x00" + issue(0x0B, 0, 0) + b"\x02\x00\x00" + b"\x04\x00" + b"\x04\x00",
        # exhaustion: one port, two issues, pinned client.
        "full": b"\x00\x00" + issue(0x10, 1, 0) + issue(0, 1, 0) + b"\x01\x00\x02" + b"\x07",
    }
    for name, b in seqs.items():
        write("ticket", name, b)


def signed_token(key, nonce, expires, flags, ip, port, host, password):
    """A signed ticket as core/src/ticket/signed.rs seals it (written again
    here from its module docs, so the seeds also check the format)."""
    import base64
    import hmac

    mac = lambda k, *parts: hmac.new(k, b"".join(parts), hashlib.sha256).digest()
    key_id = mac(key, b"vncap ticket v1 key id")[:4]
    seal_key = mac(key, b"vncap ticket v1 seal")
    tag_key = mac(key, b"vncap ticket v1 tag")
    pw = password[:8]
    stream = mac(seal_key, b"password", nonce)
    sealed = bytes(a ^ b for a, b in zip(pw, stream))
    body = (
        b"\x01" + key_id + nonce + struct.pack(">Q", expires) + bytes([flags]) + ip
        + struct.pack(">H", port) + counted(host) + counted(sealed)
    )
    raw = body + mac(tag_key, body)[:16]
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def signed_ticket():
    now = 1_800_000_000
    current, previous = b"\x11" * 32, b"\x22" * 32
    nonce = hashlib.sha256(b"vncap signed seed").digest()[:16]
    ws = 1 << 2  # tls No, websocket Yes
    tokens = {
        "websocket": signed_token(current, nonce, now + 30, ws, b"", 5901, b"node1.example.org", b"sekrit12"),
        "previous-key": signed_token(previous, nonce, now + 30, ws, b"", 5900, b"node2", b"pw"),
        "pinned-v4": signed_token(current, nonce, now + 30, 2 | 2 << 2 | 1 << 4, bytes([192, 0, 2, 7]), 5900, b"10.0.0.1", b""),
        "pinned-v6": signed_token(current, nonce, now + 300, ws | 2 << 4, bytes(15) + b"\x01", 5900, b"::1", b"0123456789"),
    }
    for name, token in tokens.items():
        write("signed_ticket", "open-" + name, b"\x00" + struct.pack(">Q", now) + token)
    write("signed_ticket", "open-expired", b"\x00" + struct.pack(">Q", now + 30) + tokens["websocket"])
    write("signed_ticket", "open-garbage", b"\x00" + struct.pack(">Q", now) + b"AAAA-_~")
    seal = lambda lifetime, flags, host, pw: (
        b"\x01" + nonce + struct.pack(">H", lifetime) + bytes([flags]) + struct.pack(">H", 5900)
        + counted(host) + counted(pw) + bytes(range(16)) + b"\x00\x07\x01"
    )
    write("signed_ticket", "seal-websocket", seal(30, 1 + 3 * 1, b"node1", b"sekrit12"))
    write("signed_ticket", "seal-pinned", seal(300, 2 + 3 * 2 + 9 * 1, b"node1", b""))
    write("signed_ticket", "seal-expired", seal(0, 0, b"n", b"pw"))
    write("signed_ticket", "seal-too-long", seal(400, 2, b"h" * 255, b"x" * 64))


def backend_allow():
    # [address: 16] [port] [own port] [flags] [rules]
    v4 = bytes([10, 0, 0, 5]) + bytes(12)
    v6 = bytes([0x20, 0x01, 0x0D, 0xB8]) + bytes(11) + b"\x07"
    for name, (addr, port, flags, rules) in {
        "v4-range": (v4, 5901, 1, b"10.0.0.0/8:5900-5999"),
        "v6-bracket": (v6, 5901, 0, b"[2001:db8::7]:5901,192.0.2.0/24"),
        "v6-prefix-ports": (v6, 6000, 0, b"2001:db8::/32:5900-6000, ::1:5900-5999"),
        "own-port": (bytes([127, 0, 0, 1]) + bytes(12), 8888, 7, b"0.0.0.0/0,::/0"),
    }.items():
        write("backend_allow", name, addr + struct.pack(">HH", port, 8888) + bytes([flags]) + rules)


def main():
    shutil.rmtree(CORPUS, ignore_errors=True)
    backend_allow()
    rfb()
    entry()
    proxy()
    metrics()
    web()
    ws()
    control()
    policy()
    sniff()
    ticket()
    signed_ticket()
    total = 0
    for t in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, t))
        size = sum(os.path.getsize(os.path.join(CORPUS, t, f)) for f in files)
        total += size
        print("%-14s %3d seeds %8d bytes" % (t, len(files), size))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
