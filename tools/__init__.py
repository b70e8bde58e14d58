"""Operator commands (`python -m tools ...`): publish articles to the ingest API, inspect and redrive the DLQ.

They work against AWS (default endpoints) and the offline stack (AWS_ENDPOINT_URL and the
local ingest URL). Not part of the Lambda layer.
"""
