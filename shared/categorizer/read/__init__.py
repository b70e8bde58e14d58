"""The read API (docs/read-api.md): results by article id, by page URL, and in batches.

- `models`: the request and response models (the OpenAPI schema is generated from them);
- `reader`: ResultsTable reads, and which row answers for a URL several articles share;
- `api`: the HTTP routes on Powertools' APIGatewayHttpResolver, ETag and Cache-Control;
- `python -m categorizer.read`: prints the OpenAPI schema (docs/read-api.openapi.json).
"""
