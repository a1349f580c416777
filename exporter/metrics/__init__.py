"""The metrics contract and its rendering in the Prometheus text format (no sockets)."""
