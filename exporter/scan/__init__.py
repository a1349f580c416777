"""The TLS capability scan: what a server accepts, beyond what one probe negotiated (issue 17)."""
