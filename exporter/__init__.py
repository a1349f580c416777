"""smtp-tls-exporter: Prometheus metrics about SMTP servers' TLS, certificates and authentication."""

__version__ = "0.1.0"
