"""DANE for SMTP (RFC 7672): TLSA records found securely, and matched against the presented chain."""
