"""The operator CLI against the functions in moto: reuse their fixtures."""

from tests.unit.categorize.conftest import fake_openai, stack
from tests.unit.ingest.conftest import ingest, ingest_stack

__all__ = ["fake_openai", "ingest", "ingest_stack", "stack"]
