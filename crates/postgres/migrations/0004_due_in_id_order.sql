-- The claim takes due jobs in (next_run_at, id) order. With only next_run_at
-- indexed, a herd of jobs due on the same second was sorted whole on every
-- claim (17 ms for 20,000 jobs, for a batch of 64); with the id in the index
-- the claim reads its 64 rows in order and stops.
DROP INDEX chime_job_due;
CREATE INDEX chime_job_due ON chime_job (next_run_at, id)
    WHERE next_run_at IS NOT NULL AND paused IS NULL AND broken IS NULL;
