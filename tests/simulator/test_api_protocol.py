"""The wire details behind the API: Go's formats, pacing of answers, and the edges of each route."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
import json
import math

from aiohttp.test_utils import TestServer
import httpx
import ollama
import pytest

from simulator.behaviour import Completion, Token
from simulator.profiles import Faults
from simulator.server import (
    MAX_BODY_BYTES,
    MAX_CONTENT_CHUNKS,
    MAX_THINKING_CHUNKS,
    SIMULATOR,
    ApiError,
    RunningSimulator,
    _parameter_count,
    create_app,
    decode_base64,
    go_time,
    keep_alive_seconds,
    logprob_entries,
    parse_go_duration,
    plan_reply,
    run_simulator,
    thinking_pieces,
)
from tests.simulator.conftest import EMBEDDER, STUDENT, TEACHER, make_config

USER = [{"role": "user", "content": "Anything unusual?"}]

# --- Go's formats --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("300ms", 0.3),
        ("1.5s", 1.5),
        (".5h", 1800.0),
        ("+10s", 10.0),
        ("-1m", -60.0),
        ("0", 0.0),
        ("-0", 0.0),
        ("2us", 2e-6),
        ("7ns", 7e-9),
    ],
)
def test_durations_parse_like_go(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", 'time: invalid duration ""'),
        ("-", 'time: invalid duration "-"'),
        ("m", 'time: invalid duration "m"'),
        ("1.2.3s", 'time: missing unit in duration "1.2.3s"'),
        ("10", 'time: missing unit in duration "10"'),
        ("3d", 'time: unknown unit "d" in duration "3d"'),
    ],
)
def test_bad_durations_fail_with_gos_messages(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=r"^time: ") as caught:
        parse_go_duration(text)

    assert str(caught.value) == error


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), (0.5, 0.5), (0, 0.0), (-1, math.inf), ("-5m", math.inf), ("10m", 600.0)],
)
def test_keep_alive_is_seconds_or_a_duration_and_negative_is_forever(
    value: object, seconds: float
) -> None:
    assert keep_alive_seconds(value) == seconds


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (True, "Unsupported type: 'bool'"),
        ([], "Unsupported type: '[]interface {}'"),
        ({}, "Unsupported type: 'map[string]interface {}'"),
    ],
)
def test_keep_alive_of_another_type_is_refused(value: object, error: str) -> None:
    with pytest.raises(ValueError, match="Unsupported type") as caught:
        keep_alive_seconds(value)

    assert str(caught.value) == error


def test_times_are_rfc3339_like_go_marshals_them() -> None:
    utc = datetime(2026, 3, 1, 12, 30, 5, 250000, tzinfo=UTC)
    whole_second = datetime(2026, 3, 1, 12, 30, 5, tzinfo=timezone(timedelta(hours=2)))

    assert go_time(utc) == "2026-03-01T12:30:05.25Z"
    assert go_time(whole_second) == "2026-03-01T12:30:05+02:00"


def test_base64_errors_name_the_offending_byte() -> None:
    assert decode_base64("aGk=\n") == b"hi"
    for text, offset in [("aGk*", 3), ("aGk", 0), ("aGkgdGhlcmU", 8)]:
        with pytest.raises(ApiError, match="illegal base64") as caught:
            decode_base64(text)
        assert caught.value.message == f"illegal base64 data at input byte {offset}"


def test_parameter_sizes_become_counts() -> None:
    assert _parameter_count("5.1B") == 5_100_000_000
    assert _parameter_count("307.58M") == 307_580_000
    assert _parameter_count("") == 0
    assert _parameter_count("big") == 0


# --- Pacing ----------------------------------------------------------------------------------------


def _completion(words: int, thinking: str | None = None, latency_s: float = 2.0) -> Completion:
    tokens = tuple(Token(f" w{n}", -0.1, ((f" w{n}", -0.1), (" x", -2.5))) for n in range(words))
    return Completion(
        tokens=tokens,
        thinking=thinking,
        prompt_tokens=300,
        latency_s=latency_s,
        scene_id=None,
        correct=None,
    )


def test_long_answers_are_grouped_into_few_chunks_over_the_scaled_latency() -> None:
    teacher = make_config().models[TEACHER]
    completion = _completion(500, thinking="Let me think about it. " * 200)

    reply = plan_reply(completion, teacher, {}, time_scale=0.5)

    thinking = [piece for piece in reply.pieces if piece.thinking]
    content = [piece for piece in reply.pieces if piece.content]
    assert len(thinking) <= MAX_THINKING_CHUNKS
    assert len(content) <= MAX_CONTENT_CHUNKS
    assert reply.thinking == completion.thinking
    assert reply.content == completion.content
    assert sum(piece.delay for piece in reply.pieces) == pytest.approx(1.0)
    assert reply.prompt_eval_s + reply.eval_s == pytest.approx(1.0)
    assert reply.eval_count == 500 + len(thinking_pieces(completion.thinking or ""))
    assert reply.done_reason == "stop"


def test_num_predict_cuts_the_answer() -> None:
    student = make_config().models[STUDENT]

    reply = plan_reply(_completion(40), student, {"num_predict": 5}, time_scale=1.0)

    assert reply.done_reason == "length"
    assert reply.eval_count == 5
    assert reply.content == " w0 w1 w2 w3 w4"


def test_an_empty_answer_is_still_one_paced_chunk() -> None:
    student = make_config().models[STUDENT]

    reply = plan_reply(_completion(0), student, {}, time_scale=1.0)

    assert len(reply.pieces) == 1
    assert reply.content == ""
    assert reply.pieces[0].delay == pytest.approx(2.0)


def test_thinking_pieces_join_back_to_the_text() -> None:
    for text in ["", "one", "  two words  ", "line\nbreaks\n\n", "tabs\tand  spaces "]:
        assert "".join(thinking_pieces(text)) == text


def test_logprob_entries_carry_bytes_except_for_empty_tokens() -> None:
    entries = logprob_entries([Token("é", -0.5, (("é", -0.5), ("", -3.0)))], top_logprobs=2)

    assert entries == [
        {
            "token": "é",
            "logprob": -0.5,
            "bytes": [195, 169],
            "top_logprobs": [
                {"token": "é", "logprob": -0.5, "bytes": [195, 169]},
                {"token": "", "logprob": -3.0},
            ],
        }
    ]


# --- Edges of the routes ---------------------------------------------------------------------------


async def test_format_json_is_accepted(client: ollama.AsyncClient) -> None:
    response = await client.chat(STUDENT, USER, format="json", think=False)

    assert response.done_reason == "stop"


async def test_embed_without_an_input_field_only_loads(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/embed", json={"model": EMBEDDER})

    assert response.json() == {"model": EMBEDDER, "embeddings": []}


async def test_legacy_embeddings_edges(http: httpx.AsyncClient) -> None:
    empty = await http.post("/api/embeddings", json={"model": EMBEDDER})
    chat_model = await http.post("/api/embeddings", json={"model": STUDENT, "prompt": "hi"})

    assert empty.json() == {"embedding": []}
    assert chat_model.status_code == 500
    assert chat_model.json() == {"error": "this model does not support embeddings"}


async def test_unloading_a_model_that_is_not_loaded_is_fine(client: ollama.AsyncClient) -> None:
    response = await client.generate(TEACHER, keep_alive=0)

    assert response.done_reason == "unload"


async def test_unloading_a_busy_model_waits_for_its_requests(
    client: ollama.AsyncClient, simulator: RunningSimulator
) -> None:
    await client.generate(STUDENT)  # loaded
    simulator.set_faults(STUDENT, Faults(stall_s=0.2))
    busy = asyncio.create_task(client.generate(STUDENT, "hi", think=False))
    while simulator.stats.running == 0:  # noqa: ASYNC110 - polling the server's state
        await asyncio.sleep(0.005)

    await client.generate(STUDENT, keep_alive=0)
    assert [model.model for model in (await client.ps()).models] == [STUDENT]
    await busy

    assert (await client.ps()).models == []


async def test_a_request_body_beyond_64_mb_is_refused(http: httpx.AsyncClient) -> None:
    oversized = b'{"model": "' + b"x" * MAX_BODY_BYTES + b'"}'

    response = await http.post("/api/chat", content=oversized)

    assert response.status_code == 413
    assert "error" in response.json()


async def test_a_bug_in_the_scripted_model_is_a_500_not_a_dead_server(
    client: ollama.AsyncClient, simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> Completion:
        raise RuntimeError("scene library exploded")

    monkeypatch.setattr(simulator.simulator.behaviour, "complete", broken)

    with pytest.raises(ollama.ResponseError) as caught:
        await client.chat(STUDENT, USER)
    monkeypatch.undo()

    assert caught.value.status_code == 500
    assert "scene library exploded" in caught.value.error
    assert (await client.chat(STUDENT, USER)).done


async def test_create_app_serves_under_any_aiohttp_runner(socket_enabled: None) -> None:
    async with TestServer(create_app(make_config())) as server, httpx.AsyncClient() as http:
        response = await http.get(str(server.make_url("/api/version")))

    assert response.json() == {"version": "0.24.0"}


async def test_run_simulator_builds_the_default_config_from_overrides(
    socket_enabled: None,
) -> None:
    async with run_simulator(seed=3, time_scale=0.01, num_parallel=2) as sim:
        assert (sim.config.seed, sim.config.num_parallel) == (3, 2)
        assert sim.url.startswith("http://127.0.0.1:")
        assert repr(sim).startswith("RunningSimulator(url=")


async def test_run_simulator_applies_overrides_to_a_given_config(socket_enabled: None) -> None:
    config = replace(make_config(), max_queue=9)

    async with run_simulator(config, seed=8, time_scale=None) as sim:
        assert (sim.config.seed, sim.config.max_queue) == (8, 9)
        assert sim.config.time_scale == config.time_scale


async def test_num_ctx_sets_the_context_window_up_to_the_models_limit(
    client: ollama.AsyncClient,
) -> None:
    await client.generate(STUDENT, options={"num_ctx": 8192})
    await client.embed(EMBEDDER, "hi", options={"num_ctx": 100_000})
    await client.generate(TEACHER, options={"num_ctx": True})  # not a number to Ollama

    windows = {model.model: model.context_length for model in (await client.ps()).models}

    assert windows == {STUDENT: 8192, "embeddinggemma:latest": 2048, TEACHER: 4096}


async def test_a_client_leaving_mid_stream_does_not_break_the_server(
    socket_enabled: None,
) -> None:
    # Under any aiohttp runner: the answer is abandoned (logged as Ollama's 499), not counted
    # as served, and the slot is free again.
    app = create_app(make_config())
    body = json.dumps({"model": TEACHER, "messages": USER, "think": True}).encode()
    async with TestServer(app) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(
            b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await reader.readuntil(b'"done": false')  # the first chunk is out
        writer.close()
        await writer.wait_closed()
        for _ in range(200):
            if app[SIMULATOR].scheduler.running == 0:
                break
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as http:
            version = await http.get(str(server.make_url("/api/version")))

    assert version.status_code == 200
    assert app[SIMULATOR].stats().served == 0
