"""The state file: results kept across restarts."""
