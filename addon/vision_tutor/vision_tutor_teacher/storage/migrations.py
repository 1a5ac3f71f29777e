"""The database schema and its migrations (``PRAGMA user_version`` counts the ones applied).

Migration 1 holds the review queue's tables (reviews, frames, events, counters), migration 2 the
prompt lab's, migration 3 the hash of each review's request (for idempotency conflicts),
migration 4 the prompt-injection mark of validation cases, migration 5 the ``meta`` table with
the database's identity: a random id made with the database, so that a client following the
event log can tell a recreated (or another) database from the one its cursor is about;
migration 6 each review's camera name, for the pages. A
database newer than this code knows is refused rather than guessed at.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Final

_LOGGER = logging.getLogger(__name__)

DATABASE_FILE: Final = "vision_tutor.db"

REVIEW_TABLES: Final = """
    CREATE TABLE contracts (
        hash TEXT PRIMARY KEY,
        body TEXT NOT NULL
    );
    CREATE TABLE reviews (
        id TEXT PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        camera TEXT NOT NULL,
        reason TEXT NOT NULL,
        priority INTEGER NOT NULL,
        detail TEXT NOT NULL,
        captured_at TEXT NOT NULL,
        student TEXT NOT NULL,
        contract_hash TEXT NOT NULL REFERENCES contracts(hash),
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        superseded_by TEXT,
        verdict TEXT,
        agrees INTEGER,
        latency_ms REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        not_before REAL NOT NULL,
        seq INTEGER NOT NULL
    );
    -- In the orders the queue reads: dispatch (most important, then oldest) and shedding
    -- (least important, then oldest), so neither sorts the whole queue.
    CREATE INDEX reviews_dispatch ON reviews (status, priority DESC, created_at);
    CREATE INDEX reviews_shedding ON reviews (status, priority, created_at);
    CREATE INDEX reviews_coalescing ON reviews (camera, reason, status);
    CREATE INDEX reviews_seq ON reviews (seq);
    CREATE INDEX reviews_updated ON reviews (status, updated_at);
    CREATE TABLE frames (
        review_id TEXT PRIMARY KEY,
        jpeg BLOB NOT NULL,
        bytes INTEGER NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX events_created ON events (created_at);
    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
"""

LAB_TABLES: Final = """
    CREATE TABLE lab_settings (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE validation_cases (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        text TEXT,
        image BLOB,
        content_hash TEXT NOT NULL,
        expected_keywords TEXT NOT NULL,
        forbidden_keywords TEXT NOT NULL,
        expected_flags TEXT NOT NULL,
        weight REAL NOT NULL,
        split TEXT NOT NULL,
        split_pinned INTEGER NOT NULL,
        source TEXT NOT NULL,
        review_id TEXT,
        reference TEXT,
        reference_model TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX validation_cases_review ON validation_cases (review_id);
    CREATE TABLE prompts (
        number INTEGER PRIMARY KEY,
        text TEXT NOT NULL,
        parent TEXT,
        source TEXT NOT NULL,
        status TEXT NOT NULL,
        round INTEGER,
        created_at REAL NOT NULL,
        student_model TEXT,
        teacher_model TEXT,
        train_score REAL,
        holdout_score REAL,
        train_suite TEXT,
        holdout_suite TEXT,
        scores TEXT NOT NULL DEFAULT '{}',
        per_case TEXT NOT NULL DEFAULT '[]',
        cost TEXT
    );
    -- At most one active prompt, whatever a bug might try.
    CREATE UNIQUE INDEX prompts_one_active ON prompts (status) WHERE status = 'active';
    CREATE TABLE prompt_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        action TEXT NOT NULL,
        version TEXT NOT NULL,
        previous TEXT,
        manual INTEGER NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE lab_jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        progress REAL NOT NULL,
        message TEXT NOT NULL,
        request TEXT NOT NULL,
        result TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX lab_jobs_created ON lab_jobs (created_at);
    CREATE TABLE lab_rounds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        at REAL NOT NULL,
        active_version TEXT,
        active_holdout REAL,
        best_version TEXT,
        best_holdout REAL,
        improvement REAL NOT NULL,
        promoted TEXT
    );
"""
"""Prompts are numbered (version ``v<number>``); scores carry fingerprints of the train and
holdout cases they were measured on, so a changed suite shows which scores are stale."""

REQUEST_HASHES: Final = """
    -- What a review was submitted with (meta and frame), so a reused idempotency key with a
    -- different body is told apart from a retry. Null for reviews from before this migration.
    ALTER TABLE reviews ADD COLUMN request_hash TEXT;
"""

INJECTION_CASES: Final = """
    -- Prompt-injection cases: text in the scene that tries to talk the student out of a hazard.
    -- A prompt that lets any of them through (misses its expected flags) is never promoted.
    ALTER TABLE validation_cases ADD COLUMN injection INTEGER NOT NULL DEFAULT 0;
"""

META_TABLE: Final = """
    CREATE TABLE meta (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO meta (name, value) VALUES ('database_id', lower(hex(randomblob(16))));
"""
"""The database's identity; a copy restored from a backup keeps it, a new database gets a new one."""

CAMERA_NAMES: Final = """
    -- The camera's name as Home Assistant shows it, sent with the review; the pages show it
    -- instead of the entity id. Empty for reviews from before this migration.
    ALTER TABLE reviews ADD COLUMN camera_name TEXT NOT NULL DEFAULT '';
"""

# Each entry migrates the schema from version N to N+1 (PRAGMA user_version).
MIGRATIONS: Final[tuple[str, ...]] = (
    REVIEW_TABLES,
    LAB_TABLES,
    REQUEST_HASHES,
    INJECTION_CASES,
    META_TABLE,
    CAMERA_NAMES,
)


def migrate(conn: sqlite3.Connection) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"the database {DATABASE_FILE} is schema version {version}, newer than this "
            f"add-on knows ({len(MIGRATIONS)}); update the add-on"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        _LOGGER.info("Migrating the database to schema version %d", number)
        conn.executescript(f"BEGIN IMMEDIATE; {script}; PRAGMA user_version = {number}; COMMIT;")
