"""The offline stack: a development tool that runs the whole system on one machine (no function imports it)."""
