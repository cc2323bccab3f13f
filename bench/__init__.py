"""Benchmarks of Courier against a plain Prosody (see bench/README.md)."""
