"""The long-running exporter: scheduler, result store and daemon."""
