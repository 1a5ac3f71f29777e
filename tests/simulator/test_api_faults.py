"""Fault injection, scheduling limits and the /sim admin API, as clients experience them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
import gc
import json
import time

import httpx
import ollama
import pytest

from simulator.profiles import Faults
from simulator.server import (
    RUNNER_EOF,
    RUNNER_STOPPED,
    SERVER_BUSY,
    RunningSimulator,
    run_simulator,
)
from tests.simulator.conftest import EMBEDDER, STUDENT, TEACHER, SimulatorFactory, make_config

USER = [{"role": "user", "content": "Is anyone at the door?"}]


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (up to two seconds) until the simulator reaches a state."""
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the simulator did not reach the expected state")


async def raises(call: Awaitable[object]) -> ollama.ResponseError:
    with pytest.raises(ollama.ResponseError) as caught:
        await call
    return caught.value


async def close_abandoned_streams() -> None:
    """Finish closing what the client leaves behind when a stream ends in an error line.

    ollama 0.6.2 raises from inside its ``async for`` over httpx's line iterator, so that
    iterator (and the iterators under it, one after the other) is only closed when
    garbage-collected, each by a task the event loop starts then. Run that chain now, so no
    closing task lingers after the test.
    """
    gc.collect()
    quiet = 0
    for _ in range(100):
        await asyncio.sleep(0)
        closing = any("async_generator_athrow" in repr(task) for task in asyncio.all_tasks())
        quiet = 0 if closing else quiet + 1
        if quiet == 3:  # the chain starts its next task one loop iteration after the last
            return


async def collect(
    stream: AsyncIterator[ollama.ChatResponse], into: list[ollama.ChatResponse]
) -> None:
    """Read a streamed answer to the end (or to the error it raises), keeping what arrived."""
    async for chunk in stream:
        into.append(chunk)  # noqa: PERF401 - a comprehension would lose the chunks before an error


# --- Injected errors -----------------------------------------------------------------------------


async def test_error_rate_answers_500_like_a_crashed_runner(
    client: ollama.AsyncClient, simulator: RunningSimulator
) -> None:
    simulator.set_faults(STUDENT, Faults(error_rate=1.0))

    error = await raises(client.chat(STUDENT, USER, think=False))
    streamed = await raises(collect(await client.chat(STUDENT, USER, think=False, stream=True), []))

    assert (error.status_code, error.error) == (500, RUNNER_STOPPED)
    assert streamed.status_code == 500
    assert (await client.chat(TEACHER, USER, think=False)).done  # other models are unaffected
    assert simulator.stats.errors_injected == 2
    assert simulator.stats.models[STUDENT].served == 0


async def test_faults_reset_to_the_profiles(
    client: ollama.AsyncClient, simulator: RunningSimulator
) -> None:
    simulator.set_faults(STUDENT, Faults(error_rate=1.0))
    simulator.reset_faults()

    assert (await client.chat(STUDENT, USER, think=False)).done


async def test_error_rate_also_hits_embeddings(
    client: ollama.AsyncClient, simulator: RunningSimulator
) -> None:
    simulator.set_faults(EMBEDDER, Faults(error_rate=1.0))

    error = await raises(client.embed(EMBEDDER, "hello"))

    assert error.status_code == 500


async def test_a_partial_error_rate_is_reproducible(start_simulator: SimulatorFactory) -> None:
    async def outcomes(seed: int) -> list[bool]:
        async with start_simulator(seed=seed) as sim:
            sim.set_faults(STUDENT, Faults(error_rate=0.5))
            async with ollama.AsyncClient(host=sim.url) as client:
                results = []
                for _ in range(16):
                    try:
                        await client.generate(STUDENT, "hi", think=False)
                        results.append(True)
                    except ollama.ResponseError:
                        results.append(False)
                return results

    first, again = await outcomes(5), await outcomes(5)

    assert first == again
    assert 0 < sum(first) < 16  # both outcomes occur at a rate of one half


async def test_faults_can_come_from_the_profiles(scenes: object, socket_enabled: None) -> None:
    config = make_config()
    student = config.models[STUDENT].with_faults(Faults(error_rate=1.0))
    config = replace(config, models={**config.models, STUDENT: student})

    async with run_simulator(config) as sim, ollama.AsyncClient(host=sim.url) as client:
        error = await raises(client.generate(STUDENT, "hi"))

    assert error.status_code == 500


# --- Mid-stream errors ---------------------------------------------------------------------------


async def test_a_midstream_error_surfaces_in_the_streaming_client(
    client: ollama.AsyncClient, simulator: RunningSimulator
) -> None:
    simulator.set_faults(TEACHER, Faults(midstream_error_rate=1.0))
    received: list[ollama.ChatResponse] = []

    error = await raises(collect(await client.chat(TEACHER, USER, stream=True), received))
    await close_abandoned_streams()

    assert error.error == RUNNER_EOF
    assert len(received) == 2  # the error strikes after a couple of chunks
    assert not any(chunk.done for chunk in received)
    assert simulator.stats.midstream_errors == 1


async def test_a_midstream_error_without_streaming_is_a_500(
    client: ollama.AsyncClient, simulator: RunningSimulator
) -> None:
    simulator.set_faults(STUDENT, Faults(midstream_error_rate=1.0))

    error = await raises(client.chat(STUDENT, USER))

    assert (error.status_code, error.error) == (500, RUNNER_EOF)


async def test_garbage_rate_reaches_the_scripted_model(
    client: ollama.AsyncClient, simulator: RunningSimulator
) -> None:
    schema = {"type": "object", "properties": {"summary": {"type": "string"}}}
    simulator.set_faults(STUDENT, Faults(garbage_rate=1.0))

    response = await client.chat(STUDENT, USER, format=schema, think=False)

    assert response.message.content
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.message.content)


# --- Stalls, timeouts and the queue --------------------------------------------------------------


async def test_a_stall_makes_a_client_with_a_short_timeout_time_out(
    simulator: RunningSimulator, client: ollama.AsyncClient
) -> None:
    simulator.set_faults(STUDENT, Faults(stall_s=5.0))
    started = time.monotonic()
    async with ollama.AsyncClient(host=simulator.url, timeout=0.2) as impatient:
        with pytest.raises(httpx.TimeoutException):
            await impatient.chat(STUDENT, USER, think=False)

    assert time.monotonic() - started < 2
    # The abandoned request gave its slot back: the next one is served at once.
    simulator.reset_faults()
    await eventually(lambda: simulator.stats.running == 0)
    assert (await client.chat(STUDENT, USER, think=False)).done


async def test_requests_for_a_loaded_model_wait_and_are_never_refused(
    start_simulator: SimulatorFactory,
) -> None:
    async with (
        start_simulator(num_parallel=1, max_queue=0) as sim,
        ollama.AsyncClient(host=sim.url) as client,
    ):
        await client.generate(STUDENT, "")  # loads it
        sim.set_faults(STUDENT, Faults(stall_s=1.0))
        running = asyncio.create_task(client.generate(STUDENT, "first", think=False))
        await eventually(lambda: sim.stats.running == 1)
        # The student is loaded: Ollama hands its requests to the runner, which queues them.
        waiting = [
            asyncio.create_task(client.generate(STUDENT, f"more {n}", think=False))
            for n in range(3)
        ]
        await eventually(lambda: sim.stats.queued == 3)
        answers = [await answer for answer in [running, *waiting]]
        assert all(answer.done for answer in answers)
        assert sim.stats.rejected_busy == 0


async def test_a_full_scheduler_queue_refuses_models_that_need_loading_at_once(
    start_simulator: SimulatorFactory,
) -> None:
    async with (
        start_simulator(num_parallel=1, max_queue=1) as sim,
        ollama.AsyncClient(host=sim.url) as client,
    ):
        sim.set_faults(STUDENT, Faults(stall_s=0.5))
        running = asyncio.create_task(client.generate(STUDENT, "first", think=False))
        await eventually(lambda: sim.stats.running == 1)
        # The teacher is not loaded: its requests wait in the scheduler, one being scheduled and
        # max_queue more; the next is refused without waiting.
        scheduled = asyncio.create_task(client.generate(TEACHER, "second", think=False))
        queued = asyncio.create_task(client.generate(TEACHER, "third", think=False))
        await eventually(lambda: sim.stats.queued == 2)

        started = time.monotonic()
        error = await raises(client.generate(TEACHER, "fourth", think=False))

        assert (error.status_code, error.error) == (503, SERVER_BUSY)
        assert time.monotonic() - started < 0.25  # rejected, not queued
        answers = [await answer for answer in (running, scheduled, queued)]
        assert all(answer.done for answer in answers)
        assert sim.stats.rejected_busy == 1
        assert sim.stats.served == 3


async def test_model_management_never_waits_for_a_slot(start_simulator: SimulatorFactory) -> None:
    async with (
        start_simulator(num_parallel=1, max_queue=0) as sim,
        ollama.AsyncClient(host=sim.url) as client,
    ):
        sim.set_faults(STUDENT, Faults(stall_s=0.5))
        busy = asyncio.create_task(client.generate(STUDENT, "hi", think=False))
        await eventually(lambda: sim.stats.running == 1)

        started = time.monotonic()
        await client.list()
        await client.ps()
        await client.show(TEACHER)
        assert time.monotonic() - started < 0.3
        # The embedding model is not loaded: its request waits in the scheduler, and with no
        # queue a second model that needs loading is refused.
        embedding = asyncio.create_task(client.embed(EMBEDDER, "x"))
        await eventually(lambda: sim.stats.queued == 1)
        assert (await raises(client.generate(TEACHER, "y", think=False))).status_code == 503
        await busy
        assert (await embedding).embeddings


async def test_num_parallel_requests_run_at_once(start_simulator: SimulatorFactory) -> None:
    async with (
        start_simulator(num_parallel=2, max_queue=0) as sim,
        ollama.AsyncClient(host=sim.url) as client,
    ):
        sim.set_faults(STUDENT, Faults(stall_s=0.2))
        pair = [
            asyncio.create_task(client.generate(STUDENT, f"request {n}", think=False))
            for n in range(2)
        ]
        await eventually(lambda: sim.stats.running == 2)
        assert sim.stats.queued == 0
        await asyncio.gather(*pair)


# --- The admin API -------------------------------------------------------------------------------


async def test_faults_can_be_set_and_reset_over_http(
    http: httpx.AsyncClient, client: ollama.AsyncClient
) -> None:
    response = await http.post("/sim/faults", json={"model": STUDENT, "error_rate": 1})
    assert response.status_code == 200
    assert response.json()["faults"][STUDENT]["error_rate"] == 1.0
    assert response.json()["faults"][TEACHER]["error_rate"] == 0.0

    assert (await raises(client.generate(STUDENT, "hi"))).status_code == 500

    reset = await http.delete("/sim/faults")
    assert reset.json()["faults"][STUDENT]["error_rate"] == 0.0
    assert (await client.generate(STUDENT, "hi")).done
    assert (await http.get("/sim/faults")).json() == reset.json()


async def test_faults_without_a_model_apply_to_every_model(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    response = await http.post("/sim/faults", json={"stall_s": 0.5, "garbage_rate": 0.25})

    assert response.status_code == 200
    assert {faults["stall_s"] for faults in response.json()["faults"].values()} == {0.5}
    assert simulator.simulator.faults()[EMBEDDER] == Faults(stall_s=0.5, garbage_rate=0.25)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (
            {"model": STUDENT, "error_rate": 1.5},
            400,
            "error_rate must be a probability between 0 and 1",
        ),
        ({"model": STUDENT, "stall_s": -1}, 400, "stall_s must be a number of seconds >= 0"),
        ({"model": STUDENT, "error_rate": "high"}, 400, "error_rate must be a number"),
        ({"model": STUDENT, "explode": 1}, 400, "unknown fault 'explode'"),
        ({"model": "nope", "error_rate": 1}, 404, "model 'nope' not found"),
    ],
)
async def test_bad_fault_settings_are_refused(
    http: httpx.AsyncClient, body: dict[str, object], status: int, error: str
) -> None:
    response = await http.post("/sim/faults", json=body)

    assert response.status_code == status
    assert response.json()["error"].startswith(error)


async def test_set_faults_on_an_unknown_model_is_a_key_error(simulator: RunningSimulator) -> None:
    with pytest.raises(KeyError):
        simulator.set_faults("nope", Faults(error_rate=1))


async def test_stats_count_requests_models_and_scenes(
    http: httpx.AsyncClient, client: ollama.AsyncClient, simulator: RunningSimulator
) -> None:
    await client.generate(STUDENT, "hi", think=False)
    await client.embed(EMBEDDER, ["a", "b"])
    simulator.set_faults(TEACHER, Faults(error_rate=1))
    await raises(client.chat(TEACHER, USER))

    stats = (await http.get("/sim/stats")).json()

    assert stats["requests"] == 3
    assert stats["served"] == 2
    assert stats["errors_injected"] == 1
    assert stats["models"][STUDENT] == {"requests": 1, "served": 1}
    assert stats["models"][TEACHER] == {"requests": 1, "served": 0}
    assert stats["models"][EMBEDDER] == {"requests": 1, "served": 1}
    assert stats["scenes"] == {}
    assert stats["rejected_busy"] == 0
    assert stats == simulator.stats.as_json()
