"""What a round works on: the task, the train and holdout cases, their fingerprints, the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vision_tutor_teacher.storage.database import Transaction

from . import suite
from .models import (
    Split,
    TaskSpec,
)
from .registry import Fingerprints


@dataclass(slots=True)
class RoundContext:
    task: TaskSpec
    train: list[suite.Case]
    holdout: list[suite.Case]
    fingerprints: Fingerprints
    judge: bool
    job_id: str
    screening_seed: str
    """A different minibatch every round, the same in every rerun of the same history (the
    number of jobs before this one and the train cases), so benchmarks reproduce."""
    result: dict[str, Any] = field(default_factory=dict)
    active_holdout_fresh: bool = False
    """Whether the active prompt's holdout score was measured in this round."""

    @property
    def all_cases(self) -> list[suite.Case]:
        return self.train + self.holdout


def round_context(tx: Transaction, judge: bool, job_id: str) -> RoundContext:
    task = suite.task_spec(tx)
    all_cases = suite.cases(tx)
    train = [case for case in all_cases if case.split is Split.TRAIN]
    holdout = [case for case in all_cases if case.split is Split.HOLDOUT]
    train_fingerprint = suite.fingerprint(train, task=task, judge=judge)
    return RoundContext(
        task=task,
        train=train,
        holdout=holdout,
        fingerprints=Fingerprints(
            train=train_fingerprint,
            holdout=suite.fingerprint(holdout, task=task, judge=judge),
        ),
        judge=judge,
        job_id=job_id,
        screening_seed=f"{tx.scalar('SELECT count(*) FROM lab_jobs')}/{train_fingerprint}",
    )
