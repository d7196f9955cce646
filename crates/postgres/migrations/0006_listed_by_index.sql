-- The dashboard's job list counts its chips and lists a page through the
-- store (it read and filtered every job on each page and poll). Failing jobs
-- are few: this index holds only them. The condition is chime_sql's, word
-- for word. There is no index on task: a task is free text, and an index
-- row is limited in size, so a long one would fail its insert.
CREATE INDEX chime_job_failing ON chime_job (id)
    WHERE last_status IN ('failed', 'timed_out', 'abandoned') AND broken IS NULL;
