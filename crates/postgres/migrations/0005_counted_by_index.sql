-- Jobs by state (`job_counts`, read by every /metrics scrape and the stats)
-- were a sequential scan of every job row. Each state but "active" now has a
-- partial index holding only its own jobs, so counting it reads that index
-- alone (nothing when no job is paused). The indexes hold the id, not the
-- pause reason or decode problem of their condition: those are free text,
-- and an index row is limited to 8,191 bytes. A claim, which moves
-- next_run_at of active jobs, writes none of these.
CREATE INDEX chime_job_paused ON chime_job (id) WHERE paused IS NOT NULL AND broken IS NULL;
CREATE INDEX chime_job_finished ON chime_job (id) WHERE next_run_at IS NULL AND paused IS NULL AND broken IS NULL;
CREATE INDEX chime_job_broken ON chime_job (id) WHERE broken IS NOT NULL;

-- The alert checks (every minute on every node, and /health?jobs=true) read
-- only jobs with an alert option: this index finds them (and the odd job
-- whose options merely mention "alert", dropped after decoding) without
-- reading every job. The condition is chime_sql's `MAY_ALERT`, word for word.
CREATE INDEX chime_job_alerting ON chime_job (id) WHERE options LIKE '%"alert_%' AND broken IS NULL;

-- History reads newest first in (scheduled_for, id) order. With scheduled_for
-- alone indexed, runs of one second (every job of a `0 * * * *` herd) were
-- sorted whole to return the first page, or the stats' newest 10,000.
-- Building it holds writes to chime_run until it is done (about a second per
-- million runs): nodes of an older version wait meanwhile, they do not fail.
DROP INDEX chime_run_time;
CREATE INDEX chime_run_time ON chime_run (scheduled_for DESC, id DESC);
