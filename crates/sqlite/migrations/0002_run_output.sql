-- What a task reported of itself (such as the tail of a command's output), at most 4 KiB.
ALTER TABLE chime_run ADD COLUMN output TEXT;
