"""The prompt lab's tables: schema migration 2 of the database (see `storage.MIGRATIONS`)."""

from __future__ import annotations

from typing import Final

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
