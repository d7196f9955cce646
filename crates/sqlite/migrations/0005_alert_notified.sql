-- The alert episode (chime-core's `alert_episode`: the job's last success
-- before the alert) whose `on_alert` hook was queued; written only by
-- `notify_alert`, with the hook's run, so each alert is notified once.
ALTER TABLE chime_job ADD COLUMN alert_notified INTEGER;
