"""Benchmarks of the system on this machine (`make bench*`, docs/capacity.md); not part of the product."""
