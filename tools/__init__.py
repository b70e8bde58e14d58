"""Operator commands (`python -m tools ...`): publish articles to the ingest API, inspect and redrive the DLQ.

They work against AWS (default endpoints) and the offline stack (AWS_ENDPOINT_URL and the
local ingest URL). Not part of the Lambda layer.
"""

import sys
from pathlib import Path

# The categorizer package is the Lambda layer (shared/): on the path, as the layer would be.
_SHARED = str(Path(__file__).resolve().parent.parent / "shared")
if _SHARED not in sys.path:
    sys.path.insert(0, _SHARED)
