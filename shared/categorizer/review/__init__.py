"""The review queue: people check low-confidence results and a random share of confident ones.

`queue` decides which rows enter it (at write time, in `categorizer.service.build_result`);
`store` reads the queue (a sparse GSI) and records decisions with conditional writes; `labels`
writes a decision as one label line under `labels/reviewed/`; `service` puts them together for
the ReviewFunction's HTTP API. docs/review.md describes the flow and the formats.
"""
