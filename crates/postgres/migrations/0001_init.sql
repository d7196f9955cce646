-- Jobs, runs and nodes, in the store's schema (the connection's search_path).
-- Instants are integer microseconds since the Unix epoch (UTC), as in chime-sqlite;
-- triggers, arguments and options are JSON text in chime-core's serde shapes.

CREATE TABLE chime_job (
    id          TEXT PRIMARY KEY,
    name        TEXT,
    task        TEXT NOT NULL,
    args        TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    options     TEXT NOT NULL,
    next_run_at BIGINT,
    paused      TEXT,
    last_run_at BIGINT,
    last_status TEXT,
    version     BIGINT NOT NULL,
    code_hash   TEXT,
    -- Set when the row no longer decodes; such a job is kept and never claimed.
    broken      TEXT
);

-- The claim: active, due, earliest first.
CREATE INDEX chime_job_due ON chime_job (next_run_at)
    WHERE next_run_at IS NOT NULL AND paused IS NULL AND broken IS NULL;

CREATE TABLE chime_run (
    id            TEXT PRIMARY KEY,
    job_id        TEXT NOT NULL,
    scheduled_for BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    status        TEXT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT,
    attempt       BIGINT NOT NULL,
    node          TEXT,
    epoch         BIGINT,
    error         TEXT,
    output        TEXT,
    late_result   TEXT,
    -- No node may fire one scheduled time twice.
    UNIQUE (job_id, scheduled_for)
);

CREATE INDEX chime_run_job_time ON chime_run (job_id, scheduled_for DESC);
CREATE INDEX chime_run_time ON chime_run (scheduled_for DESC);
CREATE INDEX chime_run_in_flight ON chime_run (job_id) WHERE status IN ('pending', 'running');
CREATE INDEX chime_run_unclaimed ON chime_run (scheduled_for) WHERE status = 'pending' AND node IS NULL;

-- Nodes and their leases: a lease is held while its row exists. Epochs come from
-- a sequence, so none is handed out twice.
CREATE TABLE chime_node (
    epoch        BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    host         TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    version      TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

-- The database's clock, in the stored unit: every node judges leases by it.
CREATE FUNCTION chime_now_us() RETURNS BIGINT AS $$
    SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT
$$ LANGUAGE SQL VOLATILE;
