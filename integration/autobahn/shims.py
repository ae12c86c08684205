"""Stand-ins for the modules that the Autobahn case files import.

Input: the module names a translated case file asks for. Output: small
modules of our own, handed out by `translate.case_import` only to the case
files (nothing is put in `sys.modules`):

- `autobahn.websocket.protocol`: `WebSocketProtocol`, the constants
  (states, close codes) the cases read (`wire.py`);
- `autobahn.websocket.utf8validator`: `Utf8Validator` (`utf8.py`);
- `autobahn.websocket.compress`: the permessage-deflate offer and accept
  classes that cases 12.x and 13.x build; they only carry parameters and
  write the offer into the opening handshake (this runner does not compress);
- `twisted.internet`, `zope.interface`: what case 9.9.1 imports at load time
  (that case is not in the suite's list, so none of it runs);
- `pkg_resources.resource_filename`: the case data files in the sdist;
- `binascii`: Python 2's, which took byte strings; the translated cases hold
  them as `str` of code points below 256.
"""

import binascii as _binascii
import os
import types

import utf8
import wire


def _bytes_of(data):
    return data.encode("latin-1") if isinstance(data, str) else data


def _module(name, **attrs):
    module = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


class PerMessageDeflateOffer:
    """A client's permessage-deflate offer, as the cases build it."""

    EXTENSION_NAME = "permessage-deflate"

    def __init__(
        self,
        acceptNoContextTakeover=True,
        acceptMaxWindowBits=True,
        requestNoContextTakeover=False,
        requestMaxWindowBits=0,
    ):
        self.acceptNoContextTakeover = acceptNoContextTakeover
        self.acceptMaxWindowBits = acceptMaxWindowBits
        self.requestNoContextTakeover = requestNoContextTakeover
        self.requestMaxWindowBits = requestMaxWindowBits

    def getExtensionString(self):
        """The offer as written in Sec-WebSocket-Extensions (RFC 7692 §7.1)."""
        parts = [self.EXTENSION_NAME]
        if self.acceptNoContextTakeover:
            parts.append("client_no_context_takeover")
        if self.acceptMaxWindowBits:
            parts.append("client_max_window_bits")
        if self.requestNoContextTakeover:
            parts.append("server_no_context_takeover")
        if self.requestMaxWindowBits != 0:
            parts.append("server_max_window_bits=%d" % self.requestMaxWindowBits)
        return "; ".join(parts)


class _Accept:
    """An accepted offer or response; only its parameters are kept."""

    def __init__(self, offer_or_response, **params):
        self.offer = offer_or_response
        self.params = params


class PerMessageDeflateOfferAccept(_Accept):
    """A server's acceptance of an offer (server side; never used here)."""


class PerMessageDeflateResponse:
    """A server's permessage-deflate response (never parsed here: the
    fuzzing client refuses a server that negotiates compression)."""


class PerMessageDeflateResponseAccept(_Accept):
    """A client's acceptance of a response."""


def _resource_filename(sdist_package_dir):
    def resource_filename(package, resource):
        if package != "autobahntestsuite":
            raise ImportError("no resources for package %r" % package)
        return os.path.join(sdist_package_dir, resource)

    return resource_filename


def modules(sdist_package_dir):
    """Every stand-in, by the name the case files import."""
    protocol = _module("autobahn.websocket.protocol", WebSocketProtocol=wire.WebSocketProtocol)
    validator = _module("autobahn.websocket.utf8validator", Utf8Validator=utf8.Utf8Validator)
    compress_names = [
        "PerMessageDeflateOffer",
        "PerMessageDeflateOfferAccept",
        "PerMessageDeflateResponse",
        "PerMessageDeflateResponseAccept",
    ]
    compress = _module(
        "autobahn.websocket.compress",
        __all__=compress_names,
        **{name: globals()[name] for name in compress_names},
    )
    websocket = _module(
        "autobahn.websocket", protocol=protocol, utf8validator=validator, compress=compress
    )
    internet = _module(
        "twisted.internet", reactor=None, interfaces=_module("interfaces", IPushProducer=None)
    )
    interface = _module("zope.interface", implements=lambda *_: None)
    py2_binascii = _module(
        "binascii",
        b2a_hex=lambda data: _binascii.b2a_hex(_bytes_of(data)).decode("ascii"),
        hexlify=lambda data: _binascii.hexlify(_bytes_of(data)).decode("ascii"),
    )
    return {
        "autobahn": _module("autobahn", websocket=websocket),
        "autobahn.websocket": websocket,
        "autobahn.websocket.protocol": protocol,
        "autobahn.websocket.utf8validator": validator,
        "autobahn.websocket.compress": compress,
        "twisted": _module("twisted", internet=internet),
        "twisted.internet": internet,
        "zope": _module("zope", interface=interface),
        "zope.interface": interface,
        "pkg_resources": _module(
            "pkg_resources", resource_filename=_resource_filename(sdist_package_dir)
        ),
        "binascii": py2_binascii,
    }
