"""Numbered schema migrations, applied in order at start-up inside one transaction each."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: jobs, history, outbox, inventory, machines, QA verdicts, machine runs
    """
    CREATE TABLE jobs (
        job_id          TEXT PRIMARY KEY,
        arrival         INTEGER NOT NULL UNIQUE,
        status          TEXT NOT NULL,
        reason          TEXT,
        customer_id     TEXT NOT NULL,
        item_id         TEXT NOT NULL,
        rush            INTEGER NOT NULL DEFAULT 0,
        due_at          REAL NOT NULL,
        received_at     REAL NOT NULL,
        updated_at      REAL NOT NULL,
        message         TEXT NOT NULL,
        estimate_s      REAL NOT NULL DEFAULT 60,
        eligible_mask   INTEGER NOT NULL DEFAULT 0,
        top             INTEGER NOT NULL DEFAULT 0,
        machine_id      TEXT,
        attempt         INTEGER NOT NULL DEFAULT 0,
        retry_count     INTEGER NOT NULL DEFAULT 0,
        progress        REAL,
        acked_lines     INTEGER,
        last_acked_line INTEGER,
        total_lines     INTEGER,
        start_line      INTEGER NOT NULL DEFAULT 0,
        event_seq       INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_queue ON jobs (status, top DESC, rush DESC, due_at, arrival);
    CREATE UNIQUE INDEX one_job_per_machine ON jobs (machine_id) WHERE status = 'engraving';
    CREATE TABLE job_events (
        id         INTEGER PRIMARY KEY,
        event_id   TEXT NOT NULL UNIQUE,
        job_id     TEXT NOT NULL REFERENCES jobs (job_id),
        seq        INTEGER NOT NULL,
        event      TEXT NOT NULL,
        status     TEXT NOT NULL,
        at         REAL NOT NULL,
        data       TEXT NOT NULL,
        UNIQUE (job_id, seq)
    );
    CREATE TABLE outbox (
        id         INTEGER PRIMARY KEY,
        topic      TEXT NOT NULL,
        payload    TEXT NOT NULL,
        qos        INTEGER NOT NULL DEFAULT 1,
        retain     INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        sent_at    REAL
    );
    CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL;
    CREATE TABLE items (
        item_id     TEXT PRIMARY KEY,
        available   INTEGER NOT NULL CHECK (available >= 0),
        reserved    INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
        consumed    INTEGER NOT NULL DEFAULT 0,
        updated_at  REAL NOT NULL
    );
    CREATE TABLE reservations (
        job_id      TEXT PRIMARY KEY,
        item_id     TEXT NOT NULL REFERENCES items (item_id),
        state       TEXT NOT NULL CHECK (state IN ('reserved', 'consumed', 'released')),
        at          REAL NOT NULL
    );
    CREATE TABLE machines (
        machine_id   TEXT PRIMARY KEY,
        ordinal      INTEGER NOT NULL,
        paused       INTEGER NOT NULL DEFAULT 0,
        availability TEXT NOT NULL DEFAULT 'UNAVAILABLE',
        execution    TEXT NOT NULL DEFAULT 'STOPPED',
        alarm        TEXT,
        heartbeat_at REAL
    );
    CREATE TABLE qa_verdicts (
        id           INTEGER PRIMARY KEY,
        job_id       TEXT NOT NULL REFERENCES jobs (job_id),
        attempt      INTEGER NOT NULL,
        passed       INTEGER NOT NULL,
        notes        TEXT NOT NULL DEFAULT '',
        by           TEXT NOT NULL DEFAULT '',
        at           REAL NOT NULL,
        delivered_at REAL,
        UNIQUE (job_id, attempt)
    );
    CREATE TABLE runs (
        id              INTEGER PRIMARY KEY,
        job_id          TEXT NOT NULL REFERENCES jobs (job_id),
        attempt         INTEGER NOT NULL,
        machine_id      TEXT NOT NULL,
        started_at      REAL NOT NULL,
        ended_at        REAL,
        outcome         TEXT,
        start_line      INTEGER NOT NULL DEFAULT 0,
        acked_lines     INTEGER,
        total_lines     INTEGER,
        last_acked_line INTEGER,
        detail          TEXT
    );
    CREATE INDEX runs_job ON runs (job_id, attempt);
    """,
    # 2: cancel requests for running jobs (written by the Temporal activity, acted on by the
    # machine worker; see crown_edge.store.workshop)
    """
    CREATE TABLE IF NOT EXISTS edge_cancel_requests (
        job_id TEXT PRIMARY KEY,
        at     REAL NOT NULL,
        reason TEXT NOT NULL DEFAULT ''
    );
    """,
    # 3: the resume mark: the last program line that may have left for the controller, written
    # before the bytes go (a window ahead); every line after it is certainly not engraved
    """
    ALTER TABLE jobs ADD COLUMN sent_line INTEGER;
    ALTER TABLE runs ADD COLUMN sent_line INTEGER;
    """,
    # 4: end-to-end delivery (crown_edge.store.outbox): an event row is done (``sent_at``) only
    # when the cloud acknowledged its event id; until then it is sent again at ``next_at``.
    # ``dropped_at``: given up when the outbox hit its age or size bound (logged and counted;
    # the event stays in job_events and the cloud can ask for a replay)
    """
    ALTER TABLE outbox ADD COLUMN event_id TEXT;
    ALTER TABLE outbox ADD COLUMN job_id TEXT;
    ALTER TABLE outbox ADD COLUMN seq INTEGER;
    ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE outbox ADD COLUMN tried_at REAL;
    ALTER TABLE outbox ADD COLUMN next_at REAL;
    ALTER TABLE outbox ADD COLUMN dropped_at REAL;
    UPDATE outbox SET event_id = json_extract(payload, '$.event_id'),
        job_id = json_extract(payload, '$.job_id'), seq = json_extract(payload, '$.seq')
        WHERE topic = 'events' AND json_valid(payload);
    CREATE INDEX outbox_event ON outbox (event_id) WHERE event_id IS NOT NULL;
    CREATE INDEX outbox_job_seq ON outbox (job_id, seq) WHERE job_id IS NOT NULL;
    """,
    # 5: when the machine acknowledged the run's first line (a job's timeline: the laser fired)
    """
    ALTER TABLE runs ADD COLUMN first_line_at REAL;
    """,
)
