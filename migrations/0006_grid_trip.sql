-- The agents' local under-frequency trip can be set per site (threshold, covered ASICs, on/off)
-- and is sent to the agent as an ArmGridTrip command; NULL keeps the control plane's default.
ALTER TABLE commands DROP CONSTRAINT IF EXISTS commands_type_check;
ALTER TABLE commands ADD CONSTRAINT commands_type_check
  CHECK (type IN ('allocate', 'release', 'set_mining', 'curtail', 'arm_grid_trip'));
ALTER TABLE site_controls ADD COLUMN grid_trip jsonb;
