"""The configuration file: strict YAML into frozen values, every problem located."""
