-- Commands to agents. Stored before they are sent; they move
-- pending → sent → acked → succeeded | failed | expired, and a control-plane restart resumes
-- every command that is not final.
CREATE TABLE commands (
  id           text PRIMARY KEY,
  site_id      text NOT NULL REFERENCES facilities(id),
  type         text NOT NULL CHECK (type IN ('allocate', 'release', 'set_mining', 'curtail')),
  payload      jsonb NOT NULL,
  state        text NOT NULL CHECK (state IN ('pending', 'sent', 'acked', 'succeeded', 'failed', 'expired')),
  actor        text NOT NULL,
  workload_id  text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  deadline     timestamptz NOT NULL,
  sent_at      timestamptz,
  acked_at     timestamptz,
  finished_at  timestamptz,
  attempts     integer NOT NULL DEFAULT 0,
  reason_code  text,
  message      text,
  devices      jsonb
);
CREATE INDEX commands_live_idx ON commands (site_id, created_at) WHERE state IN ('pending', 'sent', 'acked');
CREATE INDEX commands_created_idx ON commands (created_at DESC);
CREATE INDEX commands_site_state_idx ON commands (site_id, state, created_at DESC);
CREATE INDEX commands_workload_idx ON commands (workload_id) WHERE workload_id IS NOT NULL;
