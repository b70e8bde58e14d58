"""The offline OpenAI-compatible server, driven through the real `openai` SDK."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import openai
import pytest
from openai.types import FileObject
from openai.types.chat import ChatCompletion
from openai.types.fine_tuning import FineTuningJob

from categorizer.prompt import estimate_prompt_tokens
from categorizer.tokens import single_token_id
from local.openai_server import OpenAIServerConfig, ServerHandle, serve_in_thread
from tests.emulator.support import training_lines, upload, wait_for_job


def ask(client: openai.OpenAI, model: str, text: str, **kwargs: object) -> ChatCompletion:
    params: dict[str, object] = {"max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": 5}
    params.update(kwargs)
    reply: ChatCompletion = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": text}],
        **params,  # type: ignore[call-overload]
    )
    return reply


def test_files_round_trip(client: openai.OpenAI) -> None:
    # GIVEN an uploaded training file
    content = "\n".join(training_lines()).encode()
    created = client.files.create(file=("train.jsonl", content), purpose="fine-tune")
    # THEN it parses as FileObject and its content comes back byte for byte
    assert isinstance(created, FileObject)
    assert created.bytes == len(content) and created.purpose == "fine-tune"
    assert client.files.retrieve(created.id).filename == "train.jsonl"
    assert client.files.content(created.id).read() == content
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-missing")
    with pytest.raises(openai.BadRequestError, match="jsonl"):
        client.files.create(file=("train.txt", content), purpose="fine-tune")


def test_job_lifecycle_and_chat_completion(client: openai.OpenAI, model: str) -> None:
    # GIVEN a succeeded job (fixture); THEN the job, its events and the model look like OpenAI's
    job = client.fine_tuning.jobs.list(limit=1).data[0]
    assert isinstance(job, FineTuningJob)
    assert job.fine_tuned_model == model
    assert model.startswith("ft:gpt-4o-mini-2024-07-18:local::")
    assert job.trained_tokens and job.trained_tokens > 0
    assert isinstance(job.hyperparameters.n_epochs, int) and isinstance(job.hyperparameters.batch_size, int)
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
    assert messages[0] == "The job has successfully completed"
    assert messages[-1].startswith("Validating training file")
    assert [m["id"] for m in client.models.list().model_dump()["data"]].count(model) == 1
    assert client.models.retrieve(model).id == model

    # WHEN the model is asked about a sports text
    text = "football match goal striker"
    reply = ask(client, model, text)
    # THEN it answers the sports label with a ranking and OpenAI's usage arithmetic
    choice = reply.choices[0]
    assert choice.message.content == "0" and choice.finish_reason == "length"
    assert choice.logprobs and choice.logprobs.content
    top = choice.logprobs.content[0].top_logprobs
    assert len(top) == 5 and top[0].token == "0"
    assert [t.logprob for t in top] == sorted((t.logprob for t in top), reverse=True)
    assert reply.usage and reply.usage.completion_tokens == 1
    assert reply.usage.prompt_tokens == estimate_prompt_tokens([{"role": "user", "content": text}])


def test_junk_mass_lowers_label_coverage(server: ServerHandle, client: openai.OpenAI, model: str) -> None:
    import math

    reply = ask(client, model, "movie premiere actor", top_logprobs=20)
    assert reply.choices[0].logprobs and reply.choices[0].logprobs.content
    top = reply.choices[0].logprobs.content[0].top_logprobs
    coverage = sum(math.exp(t.logprob) for t in top if t.token in {"0", "1", "2"})
    assert coverage == pytest.approx(0.98, abs=1e-6)
    assert {"The", " ", "\n"} <= {t.token for t in top}


def test_list_jobs_filters_by_metadata_and_pages(client: openai.OpenAI) -> None:
    file_id = upload(client, training_lines())
    ids = [
        client.fine_tuning.jobs.create(
            model="gpt-4o-mini-2024-07-18", training_file=file_id, metadata={"run": run}, suffix="demo"
        ).id
        for run in ("a", "b", "b")
    ]
    found = client.fine_tuning.jobs.list(metadata={"run": "b"}).data
    assert [j.id for j in found] == ids[:0:-1]  # newest first
    page = client.fine_tuning.jobs.list(limit=1)
    assert page.has_more and page.data[0].id == ids[2]
    assert client.fine_tuning.jobs.list(limit=2, after=ids[2]).data[0].id == ids[1]
    job = wait_for_job(client, ids[0])
    assert job.metadata == {"run": "a"} and job.fine_tuned_model
    assert job.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:local:demo:")


def test_method_form_hyperparameters_are_echoed(client: openai.OpenAI) -> None:
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=upload(client, training_lines()),
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 4}}},
        seed=42,
    )
    job = wait_for_job(client, job.id)
    assert job.status == "succeeded" and job.seed == 42
    assert job.hyperparameters.n_epochs == 3 and job.hyperparameters.batch_size == 4
    assert job.method and job.method.supervised and job.method.supervised.hyperparameters
    assert job.method.supervised.hyperparameters.n_epochs == 3
    assert job.trained_tokens == 3 * sum(
        estimate_prompt_tokens(json.loads(line)["messages"]) for line in training_lines()
    )


def with_good(first_line: str) -> list[str]:
    """A bad first example followed by ten good ones (so only the bad line can fail the file)."""
    return [first_line, *training_lines()[:10]]


BAD_FILES = {
    "not json": (with_good("{not json"), "not valid JSON"),
    "no messages": (with_good(json.dumps({"prompt": "x"})), "missing key 'messages'"),
    "unknown role": (
        with_good(json.dumps({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "0"}]})),
        "invalid role in message: 'robot'",
    ),
    "unknown key": (
        with_good(
            json.dumps(
                {"messages": [{"role": "user", "content": "x", "mood": 1}, {"role": "assistant", "content": "0"}]}
            )
        ),
        "unrecognized key in a user message: 'mood'",
    ),
    "content not a string": (
        with_good(json.dumps({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "0"}]})),
        "content must be a string",
    ),
    "assistant not last": (
        with_good(json.dumps({"messages": [{"role": "assistant", "content": "0"}, {"role": "user", "content": "x"}]})),
        "last message must be from the assistant",
    ),
    "too few examples": (training_lines()[:9], "at least 10 examples"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_invalid_training_file_fails_the_job(client: openai.OpenAI, case: str) -> None:
    lines, expected = BAD_FILES[case]
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, lines))
    assert job.status == "validating_files"
    job = wait_for_job(client, job.id)
    assert job.status == "failed" and job.error
    assert job.error.code == "invalid_training_file" and job.error.param == "training_file"
    assert expected in job.error.message
    assert job.fine_tuned_model is None


def test_job_request_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as missing:
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-nope")
    assert missing.value.param == "training_file"
    file_id = upload(client, training_lines())
    with pytest.raises(openai.BadRequestError) as unknown_model:
        client.fine_tuning.jobs.create(model="gpt-3", training_file=file_id)
    assert unknown_model.value.code == "model_not_available"
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-missing")


def test_cancel_stops_a_job_before_it_trains(tmp_path: Path) -> None:
    # GIVEN a server whose jobs wait in each stage
    config = OpenAIServerConfig(state_dir=tmp_path, job_stage_delay_ms=2000)
    with serve_in_thread(config) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, training_lines()))
        # WHEN it is cancelled
        cancelled = client.fine_tuning.jobs.cancel(job.id)
        # THEN it stays cancelled, gets no model, and a second cancel is refused
        assert cancelled.status == "cancelled"
        assert wait_for_job(client, job.id).status == "cancelled"
        assert client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model is None
        assert "Fine-tuning job cancelled" in [e.message for e in client.fine_tuning.jobs.list_events(job.id)]
        with pytest.raises(openai.BadRequestError):
            client.fine_tuning.jobs.cancel(job.id)


def test_statuses_are_observable_while_polling(tmp_path: Path) -> None:
    with serve_in_thread(OpenAIServerConfig(state_dir=tmp_path, job_stage_delay_ms=300)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, training_lines()))
        seen: list[str] = []
        while (status := client.fine_tuning.jobs.retrieve(job.id).status) not in ("succeeded", "failed"):
            if not seen or seen[-1] != status:
                seen.append(status)
        assert seen[:2] == ["validating_files", "queued"] and status == "succeeded"


def test_models_survive_a_restart(tmp_path: Path) -> None:
    config = OpenAIServerConfig(state_dir=tmp_path)
    with serve_in_thread(config) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        job = wait_for_job(
            client,
            client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, training_lines())).id,
        )
        before = ask(client, str(job.fine_tuned_model), "laptop processor benchmark")
    with serve_in_thread(config) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        assert client.fine_tuning.jobs.retrieve(job.id).status == "succeeded"
        after = ask(client, str(job.fine_tuned_model), "laptop processor benchmark")
    assert before.choices[0].logprobs == after.choices[0].logprobs
    assert after.choices[0].message.content == "2"


def test_unknown_model_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as error:
        ask(client, "ft:gpt-4o-mini-2024-07-18:local::nope", "x")
    assert error.value.code == "model_not_found"
    assert isinstance(error.value.body, dict) and error.value.body["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"logprobs": False, "top_logprobs": 3}, "top_logprobs"),
        ({"logit_bias": {str(i): 1 for i in range(1025)}}, "logit_bias"),
        ({"logit_bias": {"15": 101}}, "logit_bias"),
        ({"logit_bias": {"abc": 1}}, "logit_bias"),
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_invalid_chat_parameters_are_400(
    client: openai.OpenAI, model: str, kwargs: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        ask(client, model, "x", **kwargs)
    assert error.value.param == param


def test_logit_bias_moves_probability_between_labels(client: openai.OpenAI, model: str) -> None:
    text = "football match goal striker"
    plain = ask(client, model, text)
    assert plain.choices[0].message.content == "0"
    assert plain.choices[0].logprobs and plain.choices[0].logprobs.content
    before = {t.token: t.logprob for t in plain.choices[0].logprobs.content[0].top_logprobs}
    # WHEN the winning label is pushed down and another pushed up
    bias = {str(single_token_id("0")): -100, str(single_token_id("2")): 20}
    biased = ask(client, model, text, logit_bias=bias)
    # THEN the answer moves and the junk tokens are pushed further down by the raised label
    assert biased.choices[0].message.content == "2"
    assert biased.choices[0].logprobs and biased.choices[0].logprobs.content
    after = {t.token: t.logprob for t in biased.choices[0].logprobs.content[0].top_logprobs}
    assert "0" not in after
    assert after["2"] > -0.01
    assert after["The"] < before["The"] - 5


def test_max_tokens_above_one_ends_with_stop(client: openai.OpenAI, model: str) -> None:
    reply = ask(
        client, model, "tablet screen battery review", max_completion_tokens=5, logprobs=None, top_logprobs=None
    )
    assert reply.choices[0].finish_reason == "stop" and reply.choices[0].logprobs is None


@pytest.mark.anyio
async def test_async_client_parses_the_same_shapes(server: ServerHandle, model: str) -> None:
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0) as client:
        reply = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "film festival"}],
            max_tokens=1,
            logprobs=True,
            top_logprobs=3,
        )
        assert isinstance(reply, ChatCompletion) and reply.choices[0].message.content == "1"
        jobs = await client.fine_tuning.jobs.list()
        assert isinstance(jobs.data[0], FineTuningJob)
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("gpt-5-imaginary")


def test_errors_have_openai_shape_for_unknown_routes(server: ServerHandle) -> None:
    response = httpx2.get(f"{server.base_url}/nothing-here")
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
