"""The models the lab talks to: the student (for scoring), the teacher and the embeddings."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
import logging
import ssl
import time
from typing import Any, Final

import httpx
import ollama
from pydantic import ValidationError

from vision_tutor_teacher.options import Options
from vision_tutor_teacher.teacher import CONNECT_TIMEOUT_S

_LOGGER = logging.getLogger(__name__)

STUDENT_TEMPERATURE: Final = 0.3
"""As the integration runs the student: scores must predict what the cameras will see."""
EMBED_BATCH: Final = 64


class LabFailed(Exception):
    """The job cannot go on; the message says why (shown as the job's message)."""


class StudentUnreachable(LabFailed):
    """Every case would fail the same way: stop rather than score a prompt 0."""


@dataclass(frozen=True, slots=True)
class StudentReply:
    raw: str
    latency_ms: float


class LabModels:
    """The student (for scoring), the teacher (references, synthesis, judge) and embeddings.

    Counts every call, so a job can say what it cost.
    """

    def __init__(self, options: Options, ssl_context: ssl.SSLContext) -> None:
        self.options = options
        self.teacher_model = options.teacher_model
        self.student_model = options.student_model
        self.student_url = options.student_url or options.teacher_url
        self.calls: Counter[str] = Counter()

        def client(url: str) -> ollama.AsyncClient:
            # No overall httpx timeout: each call is bounded by asyncio.timeout.
            return ollama.AsyncClient(
                host=url, verify=ssl_context, timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT_S)
            )

        self._teacher = client(options.teacher_url)
        self._student = (
            self._teacher if self.student_url == options.teacher_url else client(self.student_url)
        )

    async def close(self) -> None:
        await self._teacher.close()  # type: ignore[no-untyped-call]  # untyped in ollama
        if self._student is not self._teacher:
            await self._student.close()  # type: ignore[no-untyped-call]

    async def student(
        self, system: str, user: str, image: bytes | None, schema: dict[str, Any]
    ) -> StudentReply:
        """The student's raw answer; TimeoutError, ollama.ResponseError, httpx errors escape."""
        message: dict[str, Any] = {"role": "user", "content": user}
        if image is not None:
            message["images"] = [image]
        self.calls["student"] += 1
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.options.lab_student_timeout_s):
                response = await self._student.chat(
                    model=self.student_model,
                    messages=[{"role": "system", "content": system}, message],
                    format=schema,
                    options={"temperature": STUDENT_TEMPERATURE},
                    think=False,
                    stream=False,
                )
        except ConnectionError, httpx.ConnectError, httpx.ConnectTimeout:
            raise StudentUnreachable(
                f"cannot reach the student at {self.student_url}; nothing was scored"
            ) from None
        except ollama.ResponseError as err:
            if err.status_code == 404:
                raise StudentUnreachable(
                    f"the student server has no model {self.student_model!r}: {err.error}"
                ) from None
            raise
        latency_ms = (time.perf_counter() - started) * 1000
        return StudentReply(response.message.content or "", round(latency_ms, 1))

    async def teacher(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], temperature: float | None
    ) -> str:
        """The teacher's raw answer in `schema`; LabFailed when it cannot be asked or fails."""
        self.calls["teacher"] += 1
        options = {} if temperature is None else {"temperature": temperature}
        try:
            async with asyncio.timeout(self.options.teacher_timeout_s):
                response = await self._teacher.chat(
                    model=self.teacher_model,
                    messages=messages,
                    format=schema,
                    options=options,
                    think=False,
                    stream=False,
                )
        except TimeoutError:
            raise LabFailed(
                f"the teacher did not answer within {self.options.teacher_timeout_s:g} s"
            ) from None
        except ollama.ResponseError as err:
            raise LabFailed(f"the teacher answered {err.status_code}: {err.error}") from None
        except (ConnectionError, httpx.HTTPError) as err:
            raise LabFailed(
                f"cannot reach the teacher at {self.options.teacher_url}: "
                f"{err or type(err).__name__}"
            ) from None
        return response.message.content or ""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embeddings of `texts`; LabFailed when the embedding model fails."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = list(texts[start : start + EMBED_BATCH])
            self.calls["embedding"] += 1
            try:
                async with asyncio.timeout(self.options.embedding_timeout_s):
                    response = await self._teacher.embed(
                        model=self.options.embedding_model, input=batch
                    )
            except (
                TimeoutError,
                ConnectionError,
                httpx.HTTPError,
                ollama.ResponseError,
                ValidationError,
            ) as err:
                raise LabFailed(
                    f"the embedding model failed: {err or type(err).__name__}"
                ) from None
            if len(response.embeddings) != len(batch):
                raise LabFailed("the embedding model returned the wrong number of vectors")
            vectors.extend(list(vector) for vector in response.embeddings)
        return vectors
