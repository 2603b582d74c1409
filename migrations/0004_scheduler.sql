-- The workload scheduler (issue 4). Plain PostgreSQL and PGlite.
--   seq: submission order; first-in first-out within a priority, and the cursor of
--        GET /api/v1/workloads (keyset pagination on a unique, never-reused key).
--   allocate_command_id: the Allocate that placed the current run; a late result of an older
--        placement (a site that came back, a requeued workload) never marks this one running.
ALTER TABLE workloads ADD COLUMN seq bigserial;
ALTER TABLE workloads ADD COLUMN preempted_count integer NOT NULL DEFAULT 0;
ALTER TABLE workloads ADD COLUMN allocate_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE workloads ADD COLUMN allocate_command_id text;
ALTER TABLE workloads ADD COLUMN last_state_change timestamptz NOT NULL DEFAULT now();
CREATE UNIQUE INDEX workloads_seq_idx ON workloads (seq);
CREATE INDEX workloads_state_seq_idx ON workloads (state, seq);
CREATE INDEX workloads_customer_seq_idx ON workloads (customer_id, seq);
CREATE INDEX workloads_live_site_idx ON workloads (facility_id) WHERE state IN ('scheduled', 'running');
