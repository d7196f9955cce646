-- Nodes and their leases (chime-core's `Lease`): a lease is held while its row exists.
-- `epoch` is AUTOINCREMENT so that no epoch is ever handed out twice, even after deletes.
CREATE TABLE chime_node (
    epoch        INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    version      TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);

-- The lease epoch a run was claimed under; updates are fenced by (node, epoch).
ALTER TABLE chime_run ADD COLUMN epoch INTEGER;
-- What the run's node reported after the sweeper had already decided the run.
ALTER TABLE chime_run ADD COLUMN late_result TEXT;

-- Requested (run now) and re-queued runs that wait for any node to claim them.
CREATE INDEX chime_run_unclaimed ON chime_run (scheduled_for) WHERE status = 'pending' AND node IS NULL;
