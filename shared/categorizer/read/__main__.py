"""`python -m categorizer.read`: print the read API's OpenAPI schema (docs/read-api.openapi.json)."""

import boto3

from categorizer.read.api import build_resolver, openapi_json
from categorizer.read.reader import ResultReader

if __name__ == "__main__":
    # The factory is never called: the schema reads no table.
    reader = ResultReader(lambda: boto3.resource("dynamodb").Table("unused"))
    print(openapi_json(build_resolver(reader, cache_max_age_seconds=0)), end="")
