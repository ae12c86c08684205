"""The reading half of the fuzzing client: frames from the server, taken
apart (RFC 6455 §5.2), checked, and handed to the case.

Input: the bytes in `self.data` once the connection is open. Output: the
case's `onMessage` and `onPong` calls, Pongs for Pings, the server's Close
to `FuzzingClient._close_frame`, and for anything a server must not send a
failed connection (`protocolViolation`, `invalidPayload`).

As in Autobahn's client with `failByDrop` off, a bad frame fails the
connection with a Close and is then still read to its end, so that the
server's answer to that Close can be read after it. A payload is read as it
arrives, so invalid UTF-8 fails the connection at once (§8.1).
"""

import struct

import utf8
import wire

State = wire.WebSocketProtocol


class Receiver:
    """Mixed into `fuzzer.FuzzingClient`, whose state it reads and sets."""

    def _reset_reader(self):
        self.data = bytearray()
        self.frame = None
        self.inside_message = False
        self.utf8validator = utf8.Utf8Validator()
        self.rxFrameStats = {}

    def _read_frames(self):
        while self.state in (State.STATE_OPEN, State.STATE_CLOSING) and self._read_frame_part():
            pass

    def _read_frame_part(self):
        """Reads a frame header or the next piece of a frame's payload;
        True when there is more to read."""
        if self.frame is None:
            return self._read_frame_header()
        frame = self.frame
        piece = bytes(self.data[: frame["left"]])
        del self.data[: len(piece)]
        if frame["key"] is not None:
            piece = wire.mask_payload(piece, frame["key"], frame["length"] - frame["left"])
        frame["left"] -= len(piece)
        self._frame_data(piece)
        if frame["left"] == 0:
            self._frame_end()
        return len(self.data) > 0

    def _check_first_bytes(self, fin, rsv, opcode, masked, length):
        """The checks the first two octets allow (§5.2, §5.4, §5.5)."""
        if rsv != 0:
            self.protocolViolation("RSV = %d and no extension negotiated" % rsv)
        if masked:
            self.protocolViolation("masked server-to-client frame")
        if opcode > 7:
            if not fin:
                self.protocolViolation("fragmented control frame")
            if length > 125:
                self.protocolViolation("control frame with payload length > 125 octets")
            if opcode not in (8, 9, 10):
                self.protocolViolation("control frame using reserved opcode %d" % opcode)
            if opcode == 8 and length == 1:
                self.protocolViolation("close frame with payload length 1")
            return
        if opcode not in (0, 1, 2):
            self.protocolViolation("data frame using reserved opcode %d" % opcode)
        if not self.inside_message and opcode == 0:
            self.protocolViolation("continuation frame outside a fragmented message")
        if self.inside_message and opcode != 0:
            self.protocolViolation("non-continuation frame inside a fragmented message")

    def _read_frame_header(self):
        if len(self.data) < 2:
            return False
        b0, b1 = self.data[0], self.data[1]
        fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F
        masked, length = bool(b1 & 0x80), b1 & 0x7F
        self._check_first_bytes(fin, rsv, opcode, masked, length)
        size = 2 + (4 if masked else 0) + {126: 2, 127: 8}.get(length, 0)
        if len(self.data) < size:
            return False
        at = 2
        if length == 126:
            (length,) = struct.unpack_from("!H", self.data, at)
            at += 2
            if length < 126:
                self.protocolViolation("frame length not in its shortest form")
        elif length == 127:
            (length,) = struct.unpack_from("!Q", self.data, at)
            at += 8
            if length > 0x7FFFFFFFFFFFFFFF:
                self.protocolViolation("frame length above 2^63")
            if length < 65536:
                self.protocolViolation("frame length not in its shortest form")
        key = bytes(self.data[at : at + 4]) if masked else None
        del self.data[:size]
        self.frame = {"opcode": opcode, "fin": fin, "length": length, "left": length, "key": key}
        self._log("RF", opcode, fin, rsv, length)
        self._frame_begin()
        return length == 0 or len(self.data) > 0

    def _frame_begin(self):
        frame = self.frame
        if frame["opcode"] > 7:
            self.control_data = []
            return
        if not self.inside_message:
            self.inside_message = True
            self.validate_utf8 = frame["opcode"] == State.MESSAGE_TYPE_TEXT
            self.utf8validator.reset()
            self.utf8_last = (True, True, 0, 0)
            self.message_binary = frame["opcode"] == State.MESSAGE_TYPE_BINARY
            self.message_data = []

    def _frame_data(self, piece):
        if self.frame["opcode"] > 7:
            self.control_data.append(piece)
            return
        if self.validate_utf8:
            self.utf8_last = self.utf8validator.validate(piece)
            if not self.utf8_last[0]:
                self.invalidPayload("invalid UTF-8 in text message")
        if not self.failedByMe:
            self.message_data.append(piece)

    def _frame_end(self):
        frame, self.frame = self.frame, None
        opcode = frame["opcode"]
        self.rxFrameStats[opcode] = self.rxFrameStats.get(opcode, 0) + 1
        if opcode > 7:
            self._control_frame(opcode, b"".join(self.control_data))
            return
        if not frame["fin"]:
            return
        if self.validate_utf8 and not self.utf8_last[1]:
            self.invalidPayload("text message ends inside a code point")
        self.inside_message = False
        if not self.failedByMe:
            payload, self.message_data = b"".join(self.message_data), None
            self.runCase.onMessage(payload, self.message_binary)

    def _control_frame(self, opcode, payload):
        if opcode == 8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) > 1 else None
            reason = payload[2:] if len(payload) > 2 else None
            self._close_frame(code, reason)
        elif opcode == 9:
            # §5.5.2: a Ping gets a Pong with its payload; as in Autobahn's
            # fuzzing client, the case never sees Pings.
            if self.state == State.STATE_OPEN:
                self.sendPong(payload)
        elif opcode == 10:
            self.runCase.onPong(payload)
