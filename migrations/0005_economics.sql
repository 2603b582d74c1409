-- The economic engine's controls and its record.
-- site_controls: each site is in automatic mode (the engine decides) or manual (an operator
-- does; a manual mining command puts a site here and only an operator returns it), with
-- time-of-day windows in the site's local time.
CREATE TABLE site_controls (
  site_id          text PRIMARY KEY REFERENCES facilities(id),
  mode             text NOT NULL DEFAULT 'auto' CHECK (mode IN ('auto', 'manual')),
  mode_reason      text,
  mode_changed_by  text,
  mode_changed_at  timestamptz NOT NULL DEFAULT now(),
  schedule         jsonb NOT NULL DEFAULT '[]'::jsonb
);

-- Demand-response commitments: MW the site promised to shed for a window.
CREATE TABLE demand_response (
  id          bigserial PRIMARY KEY,
  site_id     text NOT NULL REFERENCES facilities(id),
  mw          double precision NOT NULL CHECK (mw > 0),
  starts_at   timestamptz NOT NULL,
  ends_at     timestamptz NOT NULL CHECK (ends_at > starts_at),
  program     text NOT NULL DEFAULT '',
  created_by  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX demand_response_site_window_idx ON demand_response (site_id, ends_at);

-- Every decision with its explanation: the inputs, the rule and the expected USD/h.
CREATE TABLE economic_decisions (
  time                   timestamptz NOT NULL,
  site_id                text NOT NULL,
  rule                   text NOT NULL,
  summary                text NOT NULL,
  expected_margin_usd_h  double precision,
  explanation            jsonb NOT NULL,
  commands               text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX economic_decisions_site_time_idx ON economic_decisions (site_id, time DESC);
