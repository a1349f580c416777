"""The demo: SMTP servers in every posture on loopback, probed by a real exporter."""
