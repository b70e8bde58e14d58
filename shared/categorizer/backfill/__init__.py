"""BackfillStateMachine's logic (docs/backfill.md): plan, submit, check and collect Batch API shards.

- `models`: the execution input and the state data the tasks pass along;
- `batches`: the OpenAI Batch API calls (upload, retry-safe create, retrieve, file content);
- `tasks`: `Backfill`, one method per state machine task; functions/backfill/app.py calls them.
"""
