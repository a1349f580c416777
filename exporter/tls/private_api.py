"""Every private API we lean on, in one place, each with the release that retires it.

- ``SSLObject._sslobj.get_unverified_chain()`` and ``_ssl.Certificate.public_bytes``:
  the presented chain. Public as ``SSLObject.get_unverified_chain()`` from
  Python 3.13; this shim goes when 3.13 is the floor.
- pyOpenSSL's ``OpenSSL._util.lib`` for ``X509_STORE_set_purpose``: pyOpenSSL has
  no wrapper for a store's purpose (as of 25.x); this goes when it does.
- ``SSLContext._msg_callback`` (OpenSSL's SSL_CTX_set_msg_callback), set on the
  C type's own descriptor: the handshake messages, for the key-exchange group,
  the server's signature scheme and whether it asked for a client certificate.
  Python 3.15 brings ``SSLObject.group()`` (with OpenSSL 3.2) and
  ``server_sigalg()`` (with OpenSSL 3.5); no release yet says whether a
  CertificateRequest came, so on those versions this shrinks to that one message.
"""

from __future__ import annotations

import ssl
from typing import Any

from OpenSSL import crypto
from OpenSSL._util import lib as _openssl

from exporter.tls.handshake import CONTENT_TYPE_HANDSHAKE, HandshakeRecorder

# _ssl.ENCODING_DER, for _ssl.Certificate.public_bytes on Python 3.11 and 3.12.
_ENCODING_DER = 2


def presented_chain(ssl_object: ssl.SSLObject) -> list[bytes]:
    """The certificates the server sent, leaf first, as DER."""
    public: Any = getattr(ssl_object, "get_unverified_chain", None)
    if public is not None:  # Python 3.13 and later
        return [bytes(der) for der in public() or []]
    private = ssl_object._sslobj.get_unverified_chain()  # type: ignore[attr-defined]
    return [certificate.public_bytes(_ENCODING_DER) for certificate in private or []]


def verify_as_tls_server_certificate(store: crypto.X509Store) -> None:
    """Make ``store`` check that the leaf may serve TLS (extendedKeyUsage serverAuth when present).

    The same "ssl_server" purpose OpenSSL's TLS client applies.
    """
    _openssl.X509_STORE_set_purpose(store._store, _openssl.X509_PURPOSE_SSL_SERVER)


class ObservedSSLObject(ssl.SSLObject):
    """An SSLObject whose handshake messages a HandshakeRecorder keeps.

    Made by contexts passed to observe_handshakes() (``sslobject_class`` is
    public API); the recorder appears with the first handshake message.
    """

    handshake_recorder: HandshakeRecorder | None = None


def observe_handshakes(context: ssl.SSLContext) -> None:
    """Record each handshake message of every connection ``context`` makes.

    The callback is set on the C type's own descriptor, bypassing ssl.py's
    property of the same name: that wrapper turns three integers into enums
    on each of the ~33 calls of a probe before ours runs, 30 us per handshake
    measured here, against 3 us for this callback (bench/RESULTS.md).
    """
    context.sslobject_class = ObservedSSLObject
    descriptor: Any = ssl.SSLContext.__mro__[1].__dict__["_msg_callback"]  # _ssl._SSLContext's
    descriptor.__set__(context, _on_message)


def handshake_recorder(ssl_object: ssl.SSLObject) -> HandshakeRecorder | None:
    """The messages recorded for ``ssl_object``; None if its context was not observed."""
    return getattr(ssl_object, "handshake_recorder", None)


def _on_message(  # noqa: PLR0917 - the signature CPython calls it with
    connection: Any, direction: str, version: int, content_type: int, message_type: int, data: bytes
) -> None:
    # Called by OpenSSL for every record header and message, in both
    # directions, for as long as the connection lives: return early. Nothing
    # here may raise (CPython would abort the handshake with it).
    if content_type != CONTENT_TYPE_HANDSHAKE or not isinstance(connection, ObservedSSLObject):
        return
    recorder = connection.handshake_recorder
    if recorder is None:
        recorder = connection.handshake_recorder = HandshakeRecorder()
    recorder.observe(direction == "read", data)
