"""What the fuzzing client puts on the wire and checks coming back: the
constants the case files read, masking, frame headers (RFC 6455 §5.2) and
the opening handshake (§4.1).

Input: bytes and parameters from `fuzzer.py` and `receiver.py`. Output:
encoded headers, masked payloads, the handshake request, and the verdict on
the server's handshake response. No state lives here.
"""

import base64
import hashlib
import os
import struct


class WebSocketProtocol:
    """The names the case files read from `WebSocketProtocol`."""

    STATE_CLOSED = 0
    STATE_CONNECTING = 1
    STATE_CLOSING = 2
    STATE_OPEN = 3

    MESSAGE_TYPE_TEXT = 1
    MESSAGE_TYPE_BINARY = 2

    CLOSE_STATUS_CODE_NORMAL = 1000
    CLOSE_STATUS_CODE_GOING_AWAY = 1001
    CLOSE_STATUS_CODE_PROTOCOL_ERROR = 1002
    CLOSE_STATUS_CODE_UNSUPPORTED_DATA = 1003
    CLOSE_STATUS_CODE_NULL = 1005
    CLOSE_STATUS_CODE_ABNORMAL_CLOSE = 1006
    CLOSE_STATUS_CODE_INVALID_PAYLOAD = 1007
    CLOSE_STATUS_CODE_POLICY_VIOLATION = 1008
    CLOSE_STATUS_CODE_MESSAGE_TOO_BIG = 1009
    CLOSE_STATUS_CODE_MANDATORY_EXTENSION = 1010
    CLOSE_STATUS_CODE_INTERNAL_ERROR = 1011

    # §7.4.1: the codes 1000-2999 a peer may send.
    CLOSE_STATUS_CODES_ALLOWED = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011]


# §1.3: the GUID that turns Sec-WebSocket-Key into Sec-WebSocket-Accept.
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def as_bytes(data):
    """A Python 2 byte string of the case files (a `str` of code points
    below 256), as bytes."""
    if isinstance(data, str):
        return data.encode("latin-1")
    return bytes(data)


def mask_payload(payload, key, offset=0):
    """XORs `payload` with the 4-octet `key`, starting at key position
    `offset` (§5.3); whole-number XOR is fast enough for 16 MiB frames."""
    n = len(payload)
    if n == 0:
        return b""
    key = key[offset % 4 :] + key[: offset % 4]
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def frame_header(first_byte, length):
    """The header of a masked frame without its key: the first byte as
    given (FIN, RSV, opcode), then MASK and the shortest length (§5.2)."""
    if length <= 125:
        return struct.pack("!BB", first_byte, 0x80 | length)
    if length <= 0xFFFF:
        return struct.pack("!BBH", first_byte, 0x80 | 126, length)
    return struct.pack("!BBQ", first_byte, 0x80 | 127, length)


def new_key():
    """A fresh Sec-WebSocket-Key (§4.1: 16 random octets, base64)."""
    return base64.b64encode(os.urandom(16))


def handshake_request(target, key, user_agent, offers):
    """The client's opening handshake, with the same fields as Autobahn's
    client (`Upgrade: WebSocket` capitalised as it writes it)."""
    lines = [
        "GET %s HTTP/1.1" % target.resource,
        "User-Agent: %s" % user_agent,
        "Host: %s:%d" % (target.host, target.port),
        "Upgrade: WebSocket",
        "Connection: Upgrade",
        "Pragma: no-cache",
        "Cache-Control: no-cache",
        "Sec-WebSocket-Key: %s" % key.decode(),
    ]
    if offers:
        lines.append("Sec-WebSocket-Extensions: %s" % ", ".join(offers))
    lines.append("Sec-WebSocket-Version: 13")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _parse_head(head):
    lines = head.decode("utf-8", "replace").splitlines()
    headers, counts = {}, {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name:
            continue
        key = name.strip().lower()
        headers[key] = headers[key] + ", " + value.strip() if key in headers else value.strip()
        counts[key] = counts.get(key, 0) + 1
    return lines[0] if lines else "", headers, counts


def check_response(head, key, offered):
    """What is wrong with the server's response head (up to the blank
    line), or None when it opens the connection (§4.1, the client's checks
    1-6). Returns `(problem, runner_problem)`: the second is set when the
    server accepted permessage-deflate, which `offered` cases (12.x, 13.x)
    ask for and this runner cannot speak (RFC 7692)."""
    status_line, headers, counts = _parse_head(head)
    status = status_line.split()
    if len(status) < 2 or status[0] != "HTTP/1.1" or status[1] != "101":
        return "no 101: %s" % status_line, None
    if headers.get("upgrade", "").strip().lower() != "websocket":
        return "Upgrade is not websocket", None
    tokens = [token.strip().lower() for token in headers.get("connection", "").split(",")]
    if "upgrade" not in tokens:
        return "Connection lacks upgrade", None
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
    if counts.get("sec-websocket-accept") != 1 or headers["sec-websocket-accept"] != accept:
        return "bad Sec-WebSocket-Accept", None
    extensions = headers.get("sec-websocket-extensions", "").strip()
    if extensions:
        runner_problem = None
        if offered and extensions.lower().startswith("permessage-deflate"):
            runner_problem = "server accepted %r, which this runner cannot speak" % extensions
        return "server chose an extension: %s" % extensions, runner_problem
    if headers.get("sec-websocket-protocol", "").strip():
        return "subprotocol chosen but none offered", None
    return None, None
