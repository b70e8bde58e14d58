"""The server's state on disk: uploaded files, jobs with their events, batches, trained models.

Every object is a JSON file written atomically, so a restarted server (same state dir)
serves the same files, jobs, batches and fine-tuned models. A running batch also appends each
answered request line to a partial result file, so a restart resumes it where it stopped.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import threading
import time
from pathlib import Path
from typing import Any

from local.textmodel import TextModel

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, ensure_ascii=False))
    os.replace(tmp, path)


class Store:
    def __init__(self, state_dir: Path) -> None:
        self.files_dir = state_dir / "files"
        self.jobs_dir = state_dir / "jobs"
        self.models_dir = state_dir / "models"
        self.batches_dir = state_dir / "batches"
        self.partial_dir = self.batches_dir / "partial"
        for directory in (self.files_dir, self.jobs_dir, self.models_dir, self.partial_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        # Dicts keep creation order, which lists (newest first) follow.
        file_paths = sorted(self.files_dir.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
        self.files: dict[str, dict[str, Any]] = {p.stem: json.loads(p.read_text()) for p in file_paths}
        records = sorted((json.loads(p.read_text()) for p in self.jobs_dir.glob("*.json")), key=lambda r: r["seq"])
        self.jobs: dict[str, dict[str, Any]] = {r["job"]["id"]: r["job"] for r in records}
        self.events: dict[str, list[dict[str, Any]]] = {r["job"]["id"]: r["events"] for r in records}
        batch_records = sorted(
            (json.loads(p.read_text()) for p in self.batches_dir.glob("*.json")), key=lambda r: r["seq"]
        )
        self.batches: dict[str, dict[str, Any]] = {r["batch"]["id"]: r["batch"] for r in batch_records}
        # Prompt tokens a validated batch holds in its model's queue (OpenAI's enqueued-token limit).
        self.batch_tokens: dict[str, int] = {r["batch"]["id"]: r["queued_tokens"] for r in batch_records}
        self._loaded_models: dict[str, TextModel] = {}

    # files
    def add_file(
        self, filename: str, purpose: str, content: bytes, expires_after_seconds: int | None = None
    ) -> dict[str, Any]:
        """A stored file; `expires_after_seconds` only sets `expires_at` (nothing is deleted)."""
        file_id = new_id("file-")
        (self.files_dir / f"{file_id}.data").write_bytes(content)
        created_at = int(time.time())
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": created_at,
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": None if expires_after_seconds is None else created_at + expires_after_seconds,
        }
        with self.lock:
            _write_json(self.files_dir / f"{file_id}.json", obj)
            self.files[file_id] = obj
        return obj

    def file_content(self, file_id: str) -> bytes:
        return (self.files_dir / f"{file_id}.data").read_bytes()

    def delete_file(self, file_id: str) -> None:
        with self.lock:
            del self.files[file_id]
            (self.files_dir / f"{file_id}.json").unlink()
            (self.files_dir / f"{file_id}.data").unlink()

    # jobs and events
    def save_job(self, job: dict[str, Any]) -> None:
        with self.lock:
            self.jobs[job["id"]] = job
            events = self.events.setdefault(job["id"], [])
            seq = list(self.jobs).index(job["id"])
            _write_json(self.jobs_dir / f"{job['id']}.json", {"job": job, "events": events, "seq": seq})

    def add_event(self, job_id: str, message: str, level: str = "info", data: dict[str, Any] | None = None) -> None:
        event = {
            "id": new_id("ftevent-"),
            "object": "fine_tuning.job.event",
            "created_at": int(time.time()),
            "level": level,
            "message": message,
            "data": data or {},
            "type": "metrics" if data else "message",
        }
        with self.lock:
            self.events.setdefault(job_id, []).append(event)
            self.save_job(self.jobs[job_id])

    # batches, and the request lines a running batch has answered so far
    def save_batch(self, batch: dict[str, Any], queued_tokens: int | None = None) -> None:
        with self.lock:
            self.batches[batch["id"]] = batch
            if queued_tokens is not None:
                self.batch_tokens[batch["id"]] = queued_tokens
            record = {
                "batch": batch,
                "queued_tokens": self.batch_tokens.get(batch["id"], 0),
                "seq": list(self.batches).index(batch["id"]),
            }
            _write_json(self.batches_dir / f"{batch['id']}.json", record)

    def _partial(self, batch_id: str, kind: str) -> Path:
        return self.partial_dir / f"{batch_id}.{kind}.jsonl"

    def append_batch_result(self, batch_id: str, kind: str, line: dict[str, Any]) -> None:
        """One answered request line, `kind` "output" (2xx) or "error"."""
        with self._partial(batch_id, kind).open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")

    def batch_results(self, batch_id: str, kind: str) -> list[str]:
        path = self._partial(batch_id, kind)
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def drop_batch_results(self, batch_id: str) -> None:
        for kind in ("output", "error"):
            self._partial(batch_id, kind).unlink(missing_ok=True)

    # models: one directory per job, named after the job
    def save_model(self, job_id: str, model: TextModel) -> None:
        model.save(self.models_dir / job_id)

    def model_for(self, name: str) -> TextModel | None:
        """The trained model called `name` (a fine_tuned_model id), loaded once."""
        with self.lock:
            job = next(
                (j for j in self.jobs.values() if j["fine_tuned_model"] == name and j["status"] == "succeeded"),
                None,
            )
            if job is None:
                return None
            if name not in self._loaded_models:
                self._loaded_models[name] = TextModel.load(self.models_dir / job["id"])
            return self._loaded_models[name]
