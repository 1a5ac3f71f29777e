"""Errors come back as Ollama sends them: status code, JSON body, exact text.

Texts verified against ollama/ollama v0.24.0 (server/routes.go, server/sched.go,
llm/server.go, api/types.go). Where the Ollama client refuses to send a request (an empty model
name, a format that is neither "json" nor a schema), the request goes over raw HTTP.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import httpx
import ollama
import pytest

from simulator.profiles import ModelProfile
from simulator.scenes import SceneLibrary
from simulator.server import run_simulator
from tests.simulator.conftest import (
    EMBEDDER,
    STUDENT,
    TEACHER,
    TEXT_ONLY,
    SimulatorFactory,
    make_config,
)

USER = {"role": "user", "content": "What do you see?"}


def with_image(scenes: SceneLibrary) -> dict[str, Any]:
    return {**USER, "images": [scenes.jpeg("garden_day", width=512, quality=70)]}


async def raises(call: Any) -> ollama.ResponseError:
    with pytest.raises(ollama.ResponseError) as caught:
        await call
    return caught.value


def expect(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"error": error}


# --- Unknown and missing models -------------------------------------------------------------


async def test_unknown_model_is_404_with_ollamas_texts(client: ollama.AsyncClient) -> None:
    chat = await raises(client.chat("llava:7b", [USER]))
    generate = await raises(client.generate("llava:7b", "hi"))
    show = await raises(client.show("llava:7b"))
    embed = await raises(client.embed("nomic-embed-text", "hi"))
    embeddings = await raises(client.embeddings("nomic-embed-text", "hi"))

    assert (chat.status_code, chat.error) == (404, "model 'llava:7b' not found")
    assert (generate.status_code, generate.error) == (404, "model 'llava:7b' not found")
    assert (show.status_code, show.error) == (404, "model 'llava:7b' not found")
    expected = (404, 'model "nomic-embed-text" not found, try pulling it first')
    assert (embed.status_code, embed.error) == expected
    assert (embeddings.status_code, embeddings.error) == expected


async def test_a_tag_that_is_not_served_is_unknown(client: ollama.AsyncClient) -> None:
    error = await raises(client.chat("gemma4:e4b", [USER]))

    assert error.status_code == 404


async def test_missing_model_is_400_model_is_required(http: httpx.AsyncClient) -> None:
    expect(await http.post("/api/chat", json={"messages": [USER]}), 400, "model is required")
    expect(await http.post("/api/show", json={}), 400, "model is required")
    expect(await http.post("/api/embed", json={"input": "x"}), 400, "model is required")
    expect(await http.post("/api/embeddings", json={"prompt": "x"}), 400, "model is required")
    # Ollama's generate handler reports an empty name as a model that does not exist.
    expect(await http.post("/api/generate", json={"prompt": "x"}), 404, "model '' not found")


# --- Capabilities --------------------------------------------------------------------------------


async def test_think_on_a_model_without_thinking_is_400(client: ollama.AsyncClient) -> None:
    error = await raises(client.chat(TEXT_ONLY, [USER], think=True))
    generate = await raises(client.generate(EMBEDDER, "hi", think=True))

    assert (error.status_code, error.error) == (400, '"textonly:1b" does not support thinking')
    assert (generate.status_code, generate.error) == (
        400,
        '"embeddinggemma" does not support thinking',
    )


async def test_think_false_on_a_model_without_thinking_is_fine(
    client: ollama.AsyncClient,
) -> None:
    response = await client.chat(TEXT_ONLY, [USER], think=False)

    assert response.message.content
    assert response.message.thinking is None


async def test_think_levels_are_refused_as_ollama_does_for_non_harmony_models(
    client: ollama.AsyncClient,
) -> None:
    error = await raises(client.chat(TEACHER, [USER], think="high"))

    assert (error.status_code, error.error) == (
        400,
        'think value "high" is not supported for this model',
    )


async def test_images_to_a_model_without_vision_are_400_when_asked_to_reject_them(
    start_simulator: SimulatorFactory, scenes: SceneLibrary
) -> None:
    """Real Ollama never answers so (the tests below); the option makes a misconfiguration loud."""
    async with (
        start_simulator(non_vision_images="reject") as simulator,
        ollama.AsyncClient(host=simulator.url) as client,
    ):
        error = await raises(client.chat(TEXT_ONLY, [with_image(scenes)]))

    assert (error.status_code, error.error) == (400, '"textonly:1b" does not support vision')


async def test_images_to_a_gemma_model_without_vision_fail_in_the_runner(
    client: ollama.AsyncClient, scenes: SceneLibrary
) -> None:
    # Ollama 0.24's own engine runs gemma3 with images, so a file without vision weights fails.
    error = await raises(client.chat(TEXT_ONLY, [with_image(scenes)]))

    assert (error.status_code, error.error) == (
        500,
        "Failed to create new sequence: failed to process inputs: "
        "this model is missing data required for image input",
    )


async def test_images_to_another_text_model_are_silently_dropped(
    socket_enabled: None, scenes: SceneLibrary
) -> None:
    # Any other architecture gets the image tags as text: the model answers without the image.
    llama = ModelProfile(
        name="llama3.2:1b", role="student", capabilities=("completion",), family="llama"
    )
    config = make_config()
    config = replace(config, models={**config.models, llama.name: llama})
    async with run_simulator(config, scenes=scenes) as sim:
        client = ollama.AsyncClient(host=sim.url)
        with_frame = await client.chat(llama.name, [with_image(scenes)], options={"seed": 1})
        without = await client.chat(llama.name, [USER], options={"seed": 1})

    assert with_frame.message.content == without.message.content


async def test_an_embedding_model_cannot_chat_or_generate(client: ollama.AsyncClient) -> None:
    chat = await raises(client.chat(EMBEDDER, [USER]))
    generate = await raises(client.generate(EMBEDDER, "hi"))

    assert (chat.status_code, chat.error) == (400, '"embeddinggemma" does not support chat')
    assert (generate.status_code, generate.error) == (
        400,
        '"embeddinggemma" does not support generate',
    )


async def test_a_chat_model_cannot_embed(client: ollama.AsyncClient) -> None:
    # Ollama only finds out in the runner, whose 501 passes through /api/embed.
    error = await raises(client.embed(STUDENT, "hello"))

    assert (error.status_code, error.error) == (501, "this model does not support embeddings")


# --- Invalid requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("format_", "raw"),
    [("xml", '"\\"xml\\""'), (42, '"42"'), (["json"], '"[\\"json\\"]"')],
)
async def test_a_format_that_is_not_json_or_a_schema_is_refused(
    http: httpx.AsyncClient, format_: object, raw: str
) -> None:
    # Ollama validates the format in the runner, so this is its generic 500, not a 400.
    request = {"model": STUDENT, "messages": [USER], "format": format_, "stream": False}

    expect(
        await http.post("/api/chat", json=request),
        500,
        f'invalid format: {raw}; expected "json" or a valid JSON Schema object',
    )


async def test_an_empty_format_means_no_format(http: httpx.AsyncClient) -> None:
    request = {"model": STUDENT, "messages": [USER], "format": "", "stream": False}

    assert (await http.post("/api/chat", json=request)).status_code == 200


async def test_top_logprobs_above_20_is_400(client: ollama.AsyncClient) -> None:
    error = await raises(client.chat(STUDENT, [USER], logprobs=True, top_logprobs=21))

    assert (error.status_code, error.error) == (400, "top_logprobs must be between 0 and 20")


@pytest.mark.parametrize(
    ("keep_alive", "error"),
    [
        ("soon", 'time: invalid duration "soon"'),
        ("300", 'time: missing unit in duration "300"'),
        ("5 minutes", 'time: unknown unit " minutes" in duration "5 minutes"'),
    ],
)
async def test_a_bad_keep_alive_is_400(
    client: ollama.AsyncClient, keep_alive: str, error: str
) -> None:
    caught = await raises(client.chat(STUDENT, [USER], keep_alive=keep_alive))

    assert (caught.status_code, caught.error) == (400, error)


@pytest.mark.parametrize(
    ("think", "error"),
    [
        ("maybe", 'invalid think value: "maybe" (must be "high", "medium", "low", true, or false)'),
        (1, 'think must be a boolean or string ("high", "medium", "low", true, or false)'),
    ],
)
async def test_a_bad_think_value_is_400(http: httpx.AsyncClient, think: object, error: str) -> None:
    request = {"model": TEACHER, "messages": [USER], "think": think}

    expect(await http.post("/api/chat", json=request), 400, error)


async def test_an_empty_body_is_400_missing_request_body(http: httpx.AsyncClient) -> None:
    for path in ("/api/chat", "/api/generate", "/api/embed", "/api/show", "/sim/faults"):
        expect(await http.post(path, content=b""), 400, "missing request body")


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"model": "gemma4:e2b"', b'{"model": "\xff"}', b"[1, 2]", b'"hello"'],
)
async def test_a_body_that_is_not_a_json_object_is_400(
    http: httpx.AsyncClient, content: bytes
) -> None:
    response = await http.post("/api/chat", content=content)

    assert response.status_code == 400
    assert response.json()["error"]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        (
            "stream",
            "yes",
            "cannot unmarshal string into Go struct field ChatRequest.stream of type bool",
        ),
        (
            "model",
            7,
            "cannot unmarshal number into Go struct field ChatRequest.model of type string",
        ),
        ("options", [], "cannot unmarshal array into Go struct field ChatRequest.options"),
        (
            "top_logprobs",
            2.5,
            "cannot unmarshal number 2.5 into Go struct field ChatRequest.top_logprobs of type int",
        ),
        (
            "logprobs",
            1,
            "cannot unmarshal number into Go struct field ChatRequest.logprobs of type bool",
        ),
        ("messages", {}, "cannot unmarshal object into Go struct field ChatRequest.messages"),
        ("messages", ["hi"], "cannot unmarshal string into Go struct field ChatRequest.messages"),
        ("keep_alive", True, "Unsupported type: 'bool'"),
        (
            "model",
            True,
            "cannot unmarshal bool into Go struct field ChatRequest.model of type string",
        ),
    ],
)
async def test_wrong_field_types_are_400_in_gos_words(
    http: httpx.AsyncClient, field: str, value: object, error: str
) -> None:
    request = {"model": STUDENT, "messages": [USER], "stream": False, field: value}

    response = await http.post("/api/chat", json=request)

    assert response.status_code == 400
    assert error in response.json()["error"]


async def test_undecodable_base64_image_is_400(http: httpx.AsyncClient) -> None:
    request = {"model": STUDENT, "messages": [{**USER, "images": ["abcd!!!!"]}]}

    expect(await http.post("/api/chat", json=request), 400, "illegal base64 data at input byte 4")
    image_as_number = {"model": STUDENT, "prompt": "hi", "images": [12]}
    response = await http.post("/api/generate", json=image_as_number)
    assert response.status_code == 400


async def test_base64_with_line_breaks_is_accepted(
    http: httpx.AsyncClient, scenes: SceneLibrary
) -> None:
    encoded = base64.encodebytes(scenes.jpeg("garden_day", width=256)).decode()  # 76-char lines
    request = {
        "model": STUDENT,
        "messages": [{**USER, "images": [encoded]}],
        "stream": False,
        "think": False,
    }

    assert (await http.post("/api/chat", json=request)).status_code == 200


@pytest.mark.parametrize("input_", [[1, 2], 3, {"text": "x"}, ["ok", None]])
async def test_embed_input_must_be_text(http: httpx.AsyncClient, input_: object) -> None:
    expect(
        await http.post("/api/embed", json={"model": EMBEDDER, "input": input_}),
        400,
        "invalid input type",
    )


async def test_embed_without_truncation_refuses_long_input(client: ollama.AsyncClient) -> None:
    long_text = "smoke " * 4000  # about 6000 tokens; the model's window is 2048

    truncated = await client.embed(EMBEDDER, long_text)
    error = await raises(client.embed(EMBEDDER, long_text, truncate=False))

    assert truncated.prompt_eval_count == 2048
    assert (error.status_code, error.error) == (400, "input exceeds maximum context length")


async def test_unknown_routes_and_methods_answer_like_gin(http: httpx.AsyncClient) -> None:
    missing = await http.get("/api/nothing")
    wrong_method = await http.get("/api/chat")

    assert (missing.status_code, missing.text) == (404, "404 page not found")
    assert (wrong_method.status_code, wrong_method.text) == (405, "405 method not allowed")
