-- Why a run was decided the way it was (chime-core's `Reason`), as JSON
-- text: {"code": "past_grace", "late": "2h 30m", "grace": "45m"}. NULL for
-- runs that need no reason (succeeded, or a task's own error in `error`).
ALTER TABLE chime_run ADD COLUMN reason TEXT;
