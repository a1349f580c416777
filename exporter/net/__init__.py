"""Bytes on the wire: connecting, caps, deadlines and TLS over our own transport."""
