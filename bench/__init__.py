"""Benchmarks and long runs: measured here, never asserted as timings in tests."""
