-- The dashboard's job list counts its chips and lists a page through the
-- store (it read and filtered every job on each page and poll: 12 s at
-- 1,000,000 jobs). Failing jobs are few: this index holds only them, with
-- the columns of its condition, so counting them reads nothing else. The
-- condition is chime_sql's, word for word.
CREATE INDEX chime_job_failing ON chime_job (last_status, broken)
    WHERE last_status IN ('failed', 'timed_out', 'abandoned') AND broken IS NULL;

-- There is no index on task: SQLite then plans the claim (`task IN (…)`)
-- through it and sorts the due jobs (the claim's plan test caught this).
