"""Every private API we lean on, in one place, each with the release that retires it.

- ``SSLObject._sslobj.get_unverified_chain()`` and ``_ssl.Certificate.public_bytes``:
  the presented chain. Public as ``SSLObject.get_unverified_chain()`` from
  Python 3.13; this shim goes when 3.13 is the floor.
- pyOpenSSL's ``OpenSSL._util.lib`` for ``X509_STORE_set_purpose``: pyOpenSSL has
  no wrapper for a store's purpose (as of 25.x); this goes when it does.
"""

from __future__ import annotations

import ssl
from typing import Any

from OpenSSL import crypto
from OpenSSL._util import lib as _openssl

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
