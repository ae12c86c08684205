"""The fuzzing client: the WebSocket client protocol object that an Autobahn
case drives, on asyncio.

Input: one case class (from `translate.load_cases`) and the server's
address. Output: one TCP connection on which the case runs, and, once it is
gone, the case's verdict (`FuzzingClient.result`).

Our own code, written to behave as the client under the Autobahn testsuite
does (its fuzzing client on Autobahn|Python 0.10.9, with `failByDrop`
off), because the verdicts rest on that behaviour: which side started the
closing handshake (`closedByMe`), whether it completed and the server then
closed TCP (`wasClean`), whether we had to drop TCP (`droppedByMe`), and the
close code the server sent (`remoteCloseCode`). This module holds the
connection's life: opening handshake, timers, closing, dropping;
`sender.py` writes frames, `receiver.py` reads them, `wire.py` encodes.

The cases call, besides the senders: `killAfter(s)` (fail the connection),
`closeAfter(s)` (start the closing handshake), `continueLater(s, fun)`, each
only if still connected, and read `state`, `txFrameStats`, `createWirelog`.
"""

import asyncio
import time

import receiver
import sender
import utf8
import wire

State = wire.WebSocketProtocol


class _Factory:
    """What cases ask of `self.p.factory`."""

    isServer = False


class Target:
    """Where the cases run: `ws://host:port/resource`."""

    def __init__(self, host, port, resource):
        self.host = host
        self.port = port
        self.resource = resource


class FuzzingClient(receiver.Receiver, sender.Sender, wire.WebSocketProtocol, asyncio.Protocol):
    """One case on one connection; `done` resolves to `result()`."""

    # Seconds; Autobahn's client defaults.
    OPEN_HANDSHAKE_TIMEOUT = 5
    CLOSE_HANDSHAKE_TIMEOUT = 1
    SERVER_DROP_TIMEOUT = 1

    def __init__(self, case_class, target, user_agent, done):
        self.factory = _Factory()
        self.target = target
        self.user_agent = user_agent
        self.done = done
        self.transport = None
        self.loop = asyncio.get_running_loop()
        self.timers = []
        self.runner_error = None
        self.state = State.STATE_CONNECTING
        self._reset_reader()
        self._reset_sender()
        # Read or set by cases 12.x and 13.x (permessage-deflate).
        self.perMessageCompressionOffers = []
        self._perMessageCompress = None
        self.trafficStats = None
        self.createWirelog = True
        self.wirelog = []

        self.connectionWasOpen = None
        self.closedByMe = False
        self.failedByMe = False
        self.droppedByMe = False
        self.wasClean = False
        self.wasNotCleanReason = None
        self.localCloseCode = None
        self.localCloseReason = None
        self.remoteCloseCode = None
        self.remoteCloseReason = None
        self.close_handshake_timer = None

        self.started = time.monotonic()
        # Last: the case's init() may already change the settings above.
        self.runCase = case_class(self)

    # -- the case's timers and log ---------------------------------------

    def later(self, delay, fun, *args):
        handle = self.loop.call_later(delay, fun, *args)
        self.timers.append(handle)
        return handle

    def continueLater(self, delay, fun, tag=None):
        self.later(delay, self._if_connected, fun)

    def killAfter(self, delay):
        self.later(delay, self._if_connected, self.failConnection)

    def closeAfter(self, delay):
        self.later(delay, self._if_connected, self.sendClose)

    def _if_connected(self, fun):
        if self.state != State.STATE_CLOSED:
            fun()

    def enableWirelog(self, enable):
        self.createWirelog = enable

    def _log(self, *entry):
        if self.createWirelog and len(self.wirelog) < 200:
            self.wirelog.append(entry)

    # -- the connection --------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self.later(self.OPEN_HANDSHAKE_TIMEOUT, self._open_handshake_timeout)
        self.websocket_key = wire.new_key()
        offers = [offer.getExtensionString() for offer in self.perMessageCompressionOffers]
        self.sendData(wire.handshake_request(self.target, self.websocket_key, self.user_agent, offers))

    def data_received(self, data):
        if self.state == State.STATE_CLOSED:
            return
        self.data += data
        if self.state == State.STATE_CONNECTING:
            self._opening_handshake()
        else:
            self._read_frames()

    def eof_received(self):
        # No half-close: the server's FIN ends the connection (the transport
        # closes, then connection_lost runs), as in Twisted.
        return False

    def connection_lost(self, exc):
        for handle in self.timers:
            handle.cancel()
        self.state = State.STATE_CLOSED
        try:
            if self.wasClean:
                self.runCase.onClose(True, self.remoteCloseCode, self.remoteCloseReason)
            else:
                if not self.droppedByMe and self.wasNotCleanReason is None:
                    self.wasNotCleanReason = "peer dropped TCP without a closing handshake"
                self.runCase.onClose(False, State.CLOSE_STATUS_CODE_ABNORMAL_CLOSE, None)
            # The case computes its verdicts here (Case.onConnectionLost).
            self.runCase.onConnectionLost(self.failedByMe)
            result = self.result()
        except Exception as err:
            self.done.set_exception(err)
            return
        self.done.set_result(result)

    def result(self):
        """The verdict and what it rests on, as Autobahn reports a case."""
        case = self.runCase
        return {
            "behavior": case.behavior,
            "behaviorClose": case.behaviorClose,
            "remoteCloseCode": self.remoteCloseCode,
            "result": case.result,
            "resultClose": case.resultClose,
            "duration": int(round(1000 * (time.monotonic() - self.started))),
            "closedByMe": self.closedByMe,
            "failedByMe": self.failedByMe,
            "droppedByMe": self.droppedByMe,
            "wasClean": self.wasClean,
            "wasNotCleanReason": self.wasNotCleanReason,
            "wirelog": [list(map(str, entry)) for entry in self.wirelog],
        }

    def _opening_handshake(self):
        """Waits for the whole response head, checks it (`wire.check_response`)
        and opens the connection, or drops it."""
        end = self.data.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.data[: end + 4])
        del self.data[: end + 4]
        offered = bool(self.perMessageCompressionOffers)
        problem, self.runner_error = wire.check_response(head, self.websocket_key, offered)
        if problem:
            self.wasNotCleanReason = problem
            self._log("handshake failed", problem)
            self.dropConnection(abort=True)
            return
        self.state = State.STATE_OPEN
        self.connectionWasOpen = True
        self.runCase.onOpen()
        if self.data:
            self._read_frames()

    # -- failing, closing, dropping --------------------------------------

    def dropConnection(self, abort=False):
        if self.state == State.STATE_CLOSED:
            return
        self.droppedByMe = True
        self.state = State.STATE_CLOSED
        self._log("drop", "abort" if abort else "close")
        if abort:
            self.transport.abort()
        else:
            self.transport.close()

    def failConnection(self, code=1001, reason="Going Away"):
        """Fails the connection with a closing handshake (`failByDrop` off),
        or drops TCP if one is already under way."""
        if self.state == State.STATE_CLOSED:
            return
        self.failedByMe = True
        if self.state != State.STATE_CLOSING:
            self.sendCloseFrame(code, reason.encode("utf-8")[: 125 - 2], isReply=False)
        else:
            self.dropConnection(abort=False)

    def protocolViolation(self, reason):
        self._log("violation", reason)
        self.failConnection(State.CLOSE_STATUS_CODE_PROTOCOL_ERROR, reason)

    def invalidPayload(self, reason):
        self._log("invalid payload", reason)
        self.failConnection(State.CLOSE_STATUS_CODE_INVALID_PAYLOAD, reason)

    def _close_frame(self, code, reason):
        """The server's Close (§5.5.1, §7.1.5): the reply to ours, or its own
        closing handshake, which we answer with 1000. Either way the server
        then closes TCP first (§7.1.1); after a reply we wait
        `SERVER_DROP_TIMEOUT` for that."""
        self.remoteCloseCode = code
        if code is not None and (
            code < 1000
            or (code <= 2999 and code not in State.CLOSE_STATUS_CODES_ALLOWED)
            or code >= 5000
        ):
            self.protocolViolation("invalid close code %d" % code)
        if reason is not None:
            if not utf8.Utf8Validator().validate(reason)[0]:
                self.invalidPayload("invalid close reason (not UTF-8)")
            self.remoteCloseReason = reason.decode("utf-8", "replace")
        if self.state == State.STATE_CLOSING:
            if self.close_handshake_timer is not None:
                self.close_handshake_timer.cancel()
                self.close_handshake_timer = None
            self.wasClean = True
            self.later(self.SERVER_DROP_TIMEOUT, self._server_drop_timeout)
        elif self.state == State.STATE_OPEN:
            self.wasClean = True
            self.sendCloseFrame(State.CLOSE_STATUS_CODE_NORMAL, isReply=True)

    def _open_handshake_timeout(self):
        if self.state == State.STATE_CONNECTING:
            self.wasNotCleanReason = "peer did not finish the opening handshake in time"
            self.dropConnection(abort=True)

    def _close_handshake_timeout(self):
        self.close_handshake_timer = None
        if self.state != State.STATE_CLOSED:
            self.wasClean = False
            self.wasNotCleanReason = "peer did not answer our Close in time"
            self.dropConnection(abort=True)

    def _server_drop_timeout(self):
        if self.state != State.STATE_CLOSED:
            self.wasClean = False
            self.wasNotCleanReason = "server did not close TCP in time"
            self.dropConnection(abort=True)
