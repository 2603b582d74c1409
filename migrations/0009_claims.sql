-- Claims (control-plane/claims/model.ts): what the grid response, operators, demand response,
-- the scheduler's headroom, schedules and the economic engine want a site's ASICs to do. A
-- claim is live until it is released or expires; ended claims stay as history.
CREATE TABLE claims (
  id          text PRIMARY KEY,
  site_id     text NOT NULL REFERENCES facilities(id),
  source      text NOT NULL CHECK (source IN ('grid', 'operator', 'demand_response', 'scheduler', 'schedule', 'economics')),
  device_ids  text[] NOT NULL DEFAULT '{}',
  want        jsonb NOT NULL,
  reason      text NOT NULL,
  actor       text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz,
  ended_at    timestamptz,
  ended_by    text,
  end_reason  text
);
CREATE INDEX claims_live_idx ON claims (site_id) WHERE ended_at IS NULL;

-- Why a command was sent (the reconciler's: the claim that won, its source and reason).
ALTER TABLE commands ADD COLUMN details jsonb;
-- ASIC starts per site are limited to this many kW per minute; NULL = the control plane's default.
ALTER TABLE site_controls ADD COLUMN ramp_kw_per_min double precision;
