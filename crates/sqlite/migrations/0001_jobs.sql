-- Jobs and their runs. Instants are integer microseconds since the Unix epoch (UTC);
-- triggers, arguments and options are JSON text in chime-core's serde shapes.

CREATE TABLE chime_job (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT,
    task        TEXT NOT NULL,
    args        TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    options     TEXT NOT NULL,
    next_run_at INTEGER,
    paused      TEXT,
    last_run_at INTEGER,
    last_status TEXT,
    version     INTEGER NOT NULL,
    code_hash   TEXT,
    -- Set when the row no longer decodes; such a job is kept and never claimed.
    broken      TEXT
);

-- The claim query: active, due, earliest first.
CREATE INDEX chime_job_due ON chime_job (next_run_at)
    WHERE next_run_at IS NOT NULL AND paused IS NULL AND broken IS NULL;

CREATE TABLE chime_run (
    id            TEXT PRIMARY KEY NOT NULL,
    job_id        TEXT NOT NULL,
    scheduled_for INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    status        TEXT NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    attempt       INTEGER NOT NULL,
    node          TEXT,
    error         TEXT,
    -- No store may fire one scheduled time twice.
    UNIQUE (job_id, scheduled_for)
);

CREATE INDEX chime_run_job_time ON chime_run (job_id, scheduled_for DESC);
CREATE INDEX chime_run_time ON chime_run (scheduled_for DESC);
CREATE INDEX chime_run_in_flight ON chime_run (job_id) WHERE status IN ('pending', 'running');
