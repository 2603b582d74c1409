-- Every caller has an identity: API keys for people and programs (admin, operator, customer,
-- viewer), site credentials for agents (role agent, bound to one site) and feed credentials
-- (role feed: market prices and grid frequency on MQTT). Only a secret's SHA-256 is stored: the
-- secret is shown once, when the key is made (docs/security.md).
--
-- `version` moves on every insert and revocation, so a control plane polls one max() to learn
-- that its in-memory key ring is stale (a revoked key stops working within a second, on every
-- replica, with no restart).
CREATE SEQUENCE api_keys_version_seq;

CREATE TABLE api_keys (
  id             text PRIMARY KEY,                    -- key_<hex>; public, safe to log
  name           text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
  role           text NOT NULL CHECK (role IN ('admin', 'operator', 'customer', 'viewer', 'agent', 'feed')),
  customer_id    text REFERENCES customers(id),
  site_id        text REFERENCES facilities(id),
  secret_sha256  text NOT NULL UNIQUE CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
  created_at     timestamptz NOT NULL DEFAULT now(),
  created_by     text NOT NULL,
  revoked_at     timestamptz,
  revoked_by     text,
  revoke_reason  text,
  version        bigint NOT NULL DEFAULT nextval('api_keys_version_seq'),
  CHECK ((role = 'customer') = (customer_id IS NOT NULL)),
  CHECK ((role = 'agent') = (site_id IS NOT NULL))
);
-- A name belongs to one live key at a time; a revoked key's name may be used again.
CREATE UNIQUE INDEX api_keys_live_name_idx ON api_keys (name) WHERE revoked_at IS NULL;
CREATE INDEX api_keys_version_idx ON api_keys (version);
