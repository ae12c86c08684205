"""The writing half of the fuzzing client: the calls a case makes to put
frames on the wire, valid or not.

Input: the case's calls. Output: bytes written to the transport, at once or
queued. Frames are masked (RFC 6455 §5.3). `sendFrame` writes any frame as
told; `payload_len` repeats the payload to that length; `chopsize` writes
the frame in pieces of that many octets and `sync` writes it on its own,
each after a turn of the event loop, so each piece reaches the socket in a
send of its own (Autobahn waits 10 us in Twisted, whose epoll rounds that
down to no wait; asyncio's would round it up to 1 ms per piece).
"""

import collections
import os
import struct

import wire

State = wire.WebSocketProtocol


class Sender:
    """Mixed into `fuzzer.FuzzingClient`, whose state it reads and sets."""

    def _reset_sender(self):
        self.send_queue = collections.deque()
        self.send_triggered = False
        self.send_state = "ground"
        self.autoFragmentSize = 0
        self.txFrameStats = {}

    def sendData(self, data, sync=False, chopsize=None):
        if chopsize and chopsize > 0:
            for i in range(0, len(data), chopsize):
                self.send_queue.append(data[i : i + chopsize])
            self._trigger()
        elif sync or self.send_queue:
            self.send_queue.append(data)
            self._trigger()
        else:
            self._write(data)

    def _write(self, data):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _trigger(self):
        if not self.send_triggered:
            self.send_triggered = True
            self._send_queued()

    def _send_queued(self):
        if not self.send_queue:
            self.send_triggered = False
            return
        data = self.send_queue.popleft()
        if self.state != State.STATE_CLOSED:
            self._write(data)
        self.loop.call_soon(self._send_queued)

    def sendFrame(
        self,
        opcode,
        payload=b"",
        fin=True,
        rsv=0,
        mask=None,
        payload_len=None,
        chopsize=None,
        sync=False,
    ):
        """Writes one frame as told, valid or not (§5.2)."""
        payload = wire.as_bytes(payload)
        if payload_len is not None:
            if not payload:
                raise ValueError("cannot repeat an empty payload to %d octets" % payload_len)
            repeat, rest = divmod(payload_len, len(payload))
            payload = payload * repeat + payload[:rest]
        first_byte = (0x80 if fin else 0) | ((rsv % 8) << 4) | (opcode % 128)
        if mask is None:
            key = os.urandom(4)
            frame = wire.frame_header(first_byte, len(payload)) + key + wire.mask_payload(payload, key)
        else:
            # Autobahn writes a mask the case gives into no header (the
            # cases give none).
            body = wire.mask_payload(payload, wire.as_bytes(mask))
            frame = wire.frame_header(first_byte, len(payload)) + body
        self.txFrameStats[opcode] = self.txFrameStats.get(opcode, 0) + 1
        self._log("TF", opcode, fin, rsv, len(payload), payload[:16].hex())
        self.sendData(frame, sync, chopsize)

    def sendPing(self, payload=None):
        if self.state == State.STATE_OPEN:
            self.sendFrame(9, payload or b"")

    def sendPong(self, payload=None):
        if self.state == State.STATE_OPEN:
            self.sendFrame(10, payload or b"")

    def sendMessage(self, payload, isBinary=False, fragmentSize=None, sync=False, doNotCompress=False):
        """One message, in frames of `fragmentSize` octets (else
        `autoFragmentSize`; 0 or None: one frame)."""
        if self.state != State.STATE_OPEN:
            return
        payload = wire.as_bytes(payload)
        opcode = 2 if isBinary else 1
        size = fragmentSize if fragmentSize is not None else (self.autoFragmentSize or None)
        if size is None or len(payload) <= size:
            self.sendFrame(opcode, payload, sync=sync)
            return
        if size < 1:
            raise ValueError("payload fragment size must be at least 1")
        # As Autobahn does: a payload that is a whole number of fragments
        # ends with an empty continuation frame carrying FIN.
        start, done = 0, False
        while not done:
            end = start + size
            if end > len(payload):
                done, end = True, len(payload)
            self.sendFrame(opcode if start == 0 else 0, payload[start:end], fin=done, sync=sync)
            start += size

    def beginMessage(self, isBinary=False, doNotCompress=False):
        if self.state != State.STATE_OPEN:
            return
        if self.send_state != "ground":
            raise RuntimeError("beginMessage inside a message")
        self.send_opcode = 2 if isBinary else 1
        self.send_state = "begin"

    def beginMessageFrame(self, length):
        """Writes the header of a frame (FIN clear) whose `length` octets
        follow through `sendMessageFrameData`; `endMessage` ends the message."""
        if self.state != State.STATE_OPEN:
            return
        if self.send_state not in ("begin", "inside"):
            raise RuntimeError("beginMessageFrame outside a message")
        opcode = self.send_opcode if self.send_state == "begin" else 0
        self.send_key = os.urandom(4)
        self.send_frame_left = length
        self.send_frame_offset = 0
        self.sendData(wire.frame_header(opcode, length) + self.send_key)
        self.send_state = "frame"

    def sendMessageFrameData(self, payload, sync=False):
        """Writes (part of) the payload of the frame begun last; returns
        the octets still due (> 0) or those left over (< 0), as Autobahn."""
        if self.state != State.STATE_OPEN:
            return None
        if self.send_state != "frame":
            raise RuntimeError("sendMessageFrameData outside a frame")
        payload = wire.as_bytes(payload)
        part = payload[: self.send_frame_left]
        self.sendData(wire.mask_payload(part, self.send_key, self.send_frame_offset), sync=sync)
        self.send_frame_offset += len(part)
        self.send_frame_left -= len(part)
        if self.send_frame_left == 0:
            self.send_state = "inside"
        return self.send_frame_left if self.send_frame_left > 0 else len(part) - len(payload)

    def endMessage(self):
        if self.state != State.STATE_OPEN:
            return
        self.sendFrame(0, b"", fin=True)
        self.send_state = "ground"

    def sendMessageFrame(self, payload, sync=False):
        payload = wire.as_bytes(payload)
        self.beginMessageFrame(len(payload))
        self.sendMessageFrameData(payload, sync)

    def sendCloseFrame(self, code=None, reasonUtf8=None, isReply=False):
        """Sends a Close, whatever its payload, and enters CLOSING (§5.5.1);
        one we start waits `CLOSE_HANDSHAKE_TIMEOUT` for the reply."""
        if self.state != State.STATE_OPEN:
            if self.state == State.STATE_CONNECTING:
                raise RuntimeError("cannot close a connection not yet open")
            return
        payload = b"" if code is None else struct.pack("!H", code)
        if reasonUtf8 is not None:
            reasonUtf8 = wire.as_bytes(reasonUtf8)
            payload += reasonUtf8
        self.sendFrame(8, payload)
        self.state = State.STATE_CLOSING
        self.closedByMe = not isReply
        self.localCloseCode = code
        self.localCloseReason = reasonUtf8
        if self.closedByMe:
            self.close_handshake_timer = self.later(
                self.CLOSE_HANDSHAKE_TIMEOUT, self._close_handshake_timeout
            )

    def sendClose(self, code=None, reason=None):
        """A valid Close: code 1000 or 3000-4999 (§7.4.2), reason as UTF-8."""
        if code is not None and code != 1000 and not 3000 <= code <= 4999:
            raise ValueError("invalid close code %d" % code)
        reason_utf8 = None
        if reason is not None:
            if code is None:
                raise ValueError("close reason without close code")
            reason_utf8 = reason.encode("utf-8")
            if len(reason_utf8) + 2 > 125:
                reason_utf8 = reason_utf8[:120] + b"..."
        self.sendCloseFrame(code, reason_utf8, isReply=False)
