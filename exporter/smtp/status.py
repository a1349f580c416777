"""The SMTP reply codes the probe acts on (RFC 5321 section 4.2.3, RFC 4954), by name."""

from __future__ import annotations

import enum


class SmtpStatus(enum.IntEnum):
    # The greeting, and the go-ahead for STARTTLS (RFC 3207).
    READY = 220
    CLOSING = 221
    AUTH_SUCCEEDED = 235
    COMPLETED = 250
    # RFC 4954 section 4: the server's "go on" to a SASL exchange.
    AUTH_CONTINUE = 334
    START_MAIL_INPUT = 354
    # "Service not available, closing transmission channel"; also how Postfix
    # refuses a client certificate right after the handshake (smtpd_tls_req_ccert).
    SERVICE_NOT_AVAILABLE = 421
    BAD_SEQUENCE = 503
    # RFC 4954: "Unrecognized authentication type".
    PARAMETER_NOT_IMPLEMENTED = 504
