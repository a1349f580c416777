"""Command line: the daemon's flags, the check command, logs and the event loop."""
