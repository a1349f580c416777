"""TLS as a client: the handshake context, the session, certificates, trust and host names."""
