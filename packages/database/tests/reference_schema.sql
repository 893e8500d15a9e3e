-- A database as the reference better-ccflare (TypeScript) leaves it: every table of its inventory
-- (section 5 of the reference notes), including those this port does not use, with realistic rows.
-- Credentials are in plaintext, as the reference stores them. There is no migrations table.
PRAGMA auto_vacuum = INCREMENTAL;
-- SQLite's own default, and the reference's (some distributions build SQLite with it ON).
PRAGMA secure_delete = OFF;
PRAGMA journal_mode = WAL;

CREATE TABLE accounts (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  provider TEXT DEFAULT 'anthropic',
  api_key TEXT,
  refresh_token TEXT,
  access_token TEXT,
  expires_at INTEGER,
  created_at INTEGER NOT NULL,
  last_used INTEGER,
  request_count INTEGER DEFAULT 0,
  total_requests INTEGER DEFAULT 0,
  priority INTEGER DEFAULT 0,
  rate_limited_until INTEGER,
  session_start INTEGER,
  session_request_count INTEGER DEFAULT 0,
  paused INTEGER DEFAULT 0,
  rate_limit_reset INTEGER,
  rate_limit_status TEXT,
  rate_limit_remaining INTEGER,
  auto_fallback_enabled INTEGER DEFAULT 0,
  custom_endpoint TEXT,
  auto_refresh_enabled INTEGER DEFAULT 0,
  model_mappings TEXT,
  model_fallbacks TEXT,
  cross_region_mode TEXT DEFAULT 'geographic',
  auto_pause_on_overage_enabled INTEGER DEFAULT 0,
  peak_hours_pause_enabled INTEGER NOT NULL DEFAULT 0,
  pause_reason TEXT,
  requires_reauth INTEGER DEFAULT 0,
  billing_type TEXT NULL,
  refresh_token_issued_at INTEGER,
  rate_limited_reason TEXT,
  rate_limited_at INTEGER,
  consecutive_rate_limits INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX idx_accounts_unique_name_provider_endpoint
  ON accounts(name, provider, COALESCE(custom_endpoint, ''));
CREATE INDEX idx_accounts_priority ON accounts(priority);
CREATE INDEX idx_accounts_rate_limited ON accounts(rate_limited_until) WHERE rate_limited_until IS NOT NULL;

CREATE TABLE requests (
  id TEXT PRIMARY KEY,
  timestamp INTEGER NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  account_used TEXT,
  status_code INTEGER,
  success BOOLEAN,
  error_message TEXT,
  response_time_ms INTEGER,
  failover_attempts INTEGER DEFAULT 0,
  model TEXT,
  prompt_tokens INTEGER DEFAULT 0,
  completion_tokens INTEGER DEFAULT 0,
  total_tokens INTEGER DEFAULT 0,
  cost_usd REAL DEFAULT 0,
  output_tokens_per_second REAL,
  input_tokens INTEGER DEFAULT 0,
  cache_read_input_tokens INTEGER DEFAULT 0,
  cache_creation_input_tokens INTEGER DEFAULT 0,
  output_tokens INTEGER DEFAULT 0,
  agent_used TEXT,
  api_key_id TEXT,
  api_key_name TEXT,
  project TEXT,
  billing_type TEXT DEFAULT 'api',
  combo_name TEXT,
  original_model TEXT,
  applied_model TEXT,
  project_attribution_source TEXT,
  agent_attribution_source TEXT,
  stream_terminal_state TEXT,
  client_session_id TEXT
);
CREATE INDEX idx_requests_timestamp ON requests(timestamp DESC);
CREATE INDEX idx_requests_account_used ON requests(account_used);
CREATE INDEX idx_requests_timestamp_account ON requests(timestamp DESC, account_used);
CREATE INDEX idx_requests_model_timestamp ON requests(model, timestamp DESC) WHERE model IS NOT NULL;
CREATE INDEX idx_requests_cleanup ON requests(timestamp, id);

CREATE TABLE request_payloads (
  id TEXT PRIMARY KEY,
  json TEXT NOT NULL,
  timestamp INTEGER,
  FOREIGN KEY (id) REFERENCES requests(id) ON DELETE CASCADE
);
CREATE INDEX idx_request_payloads_timestamp ON request_payloads(timestamp);

CREATE TABLE oauth_sessions (
  id TEXT PRIMARY KEY,
  account_name TEXT NOT NULL,
  verifier TEXT NOT NULL,
  mode TEXT NOT NULL,
  custom_endpoint TEXT,
  priority INTEGER DEFAULT 0,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX idx_oauth_sessions_expires ON oauth_sessions(expires_at);

CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  hashed_key TEXT NOT NULL UNIQUE,
  prefix_last_8 TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_used INTEGER,
  usage_count INTEGER DEFAULT 0,
  is_active INTEGER DEFAULT 1,
  role TEXT NOT NULL DEFAULT 'api-only'
);
CREATE INDEX idx_api_keys_hashed_key ON api_keys(hashed_key);
CREATE INDEX idx_api_keys_active ON api_keys(is_active);
CREATE INDEX idx_api_keys_role ON api_keys(role);

CREATE TABLE agent_preferences (
  agent_id TEXT PRIMARY KEY,
  model TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE combos (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  description TEXT,
  enabled INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE combo_slots (
  id TEXT PRIMARY KEY,
  combo_id TEXT NOT NULL REFERENCES combos(id) ON DELETE CASCADE,
  account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  model TEXT NOT NULL DEFAULT '',
  priority INTEGER NOT NULL DEFAULT 0,
  enabled INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX idx_combo_slots_combo_id ON combo_slots(combo_id, priority);
CREATE UNIQUE INDEX idx_combo_slots_unique ON combo_slots(combo_id, account_id, model);
CREATE TABLE combo_family_assignments (
  family TEXT PRIMARY KEY,
  combo_id TEXT REFERENCES combos(id) ON DELETE SET NULL,
  enabled INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE strategies (
  name TEXT PRIMARY KEY,
  config TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE usage_snapshots (
  account_id TEXT NOT NULL,
  timestamp INTEGER NOT NULL,
  window_key TEXT NOT NULL,
  utilization REAL,
  resets_at INTEGER
);
CREATE INDEX idx_usage_snapshots_acct_win_time ON usage_snapshots(account_id, window_key, timestamp);
CREATE INDEX idx_usage_snapshots_ts ON usage_snapshots(timestamp);

CREATE TABLE model_translations (
  id TEXT PRIMARY KEY,
  client_name TEXT NOT NULL,
  bedrock_model_id TEXT NOT NULL,
  is_default INTEGER NOT NULL DEFAULT 0,
  auto_discovered INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX idx_model_translations_client_name ON model_translations(client_name);

CREATE TABLE alerts (
  id TEXT PRIMARY KEY,
  timestamp INTEGER NOT NULL,
  type TEXT NOT NULL,
  severity TEXT NOT NULL,
  title TEXT NOT NULL,
  message TEXT NOT NULL,
  value REAL,
  threshold REAL,
  account TEXT,
  model TEXT,
  project TEXT,
  request_id TEXT,
  acknowledged INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX idx_alerts_timestamp ON alerts(timestamp);
CREATE INDEX idx_alerts_acknowledged ON alerts(acknowledged);

CREATE TABLE instance_heartbeats (
  instance_id TEXT PRIMARY KEY,
  hostname TEXT,
  pid INTEGER,
  started_at INTEGER,
  last_heartbeat INTEGER,
  node_version TEXT,
  db_dialect TEXT
);
CREATE INDEX idx_instance_heartbeats_last_heartbeat ON instance_heartbeats(last_heartbeat);

-- Rows ----------------------------------------------------------------------------------------

INSERT INTO accounts (id, name, provider, api_key, refresh_token, access_token, expires_at,
  created_at, last_used, request_count, total_requests, priority, rate_limited_until,
  session_start, session_request_count, paused, rate_limit_reset, rate_limit_status,
  rate_limit_remaining, auto_fallback_enabled, custom_endpoint, auto_refresh_enabled,
  model_mappings, model_fallbacks, cross_region_mode, auto_pause_on_overage_enabled,
  peak_hours_pause_enabled, pause_reason, requires_reauth, billing_type,
  refresh_token_issued_at, rate_limited_reason, rate_limited_at, consecutive_rate_limits)
VALUES
  ('0b6f2c1e-claude-max', 'work-max', 'anthropic', NULL,
   'sk-ant-ort01-REFERENCE-REFRESH-TOKEN-claude-max-0001', 'sk-ant-oat01-REFERENCE-ACCESS-TOKEN-claude-max-0001',
   1767229200000, 1760000000000, 1767225000000, 412, 9031, 0, NULL,
   1767220000000, 37, 0, 1767240000000, 'allowed', NULL, 1, NULL, 1,
   NULL, NULL, 'geographic', 1, 0, NULL, 0, 'plan', 1767000000000, NULL, NULL, 0),
  ('5a1d9e77-console', 'team-console', 'claude-console-api', 'sk-ant-api03-REFERENCE-CONSOLE-API-KEY-0002',
   NULL, NULL, NULL, 1761000000000, 1767100000000, 12, 140, 5, 1767300000000,
   NULL, 0, 1, NULL, 'rate_limited', 0, 0, NULL, 0,
   NULL, NULL, 'geographic', 0, 0, 'manual', 0, 'api', NULL, 'some_future_reason_v9', 1767200000000, 3),
  ('c3c3c3c3-zai', 'glm', 'zai', 'zai-REFERENCE-PROVIDER-API-KEY-0003',
   NULL, NULL, NULL, 1762000000000, NULL, 0, 0, 10, NULL,
   NULL, 0, 0, NULL, NULL, NULL, 0, 'https://api.z.ai/api/anthropic', 0,
   '{"opus":"glm-4.6","sonnet":["glm-4.6","glm-4.5-air"],"haiku":"glm-4.5-air"}',
   '["glm-4.5"]', 'global', 0, 1, NULL, 1, NULL, NULL, NULL, NULL, 0);

-- Accounts deleted long ago: their plaintext tokens still sit in freed pages of the file.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
INSERT INTO accounts (id, name, provider, refresh_token, created_at)
SELECT 'deleted-' || i, 'old-' || i, 'anthropic',
       'sk-ant-ort01-REFERENCE-DELETED-ACCOUNT-TOKEN-0004-' || i, 1759000000000 FROM n;
DELETE FROM accounts WHERE id LIKE 'deleted-%';

INSERT INTO requests (id, timestamp, method, path, account_used, status_code, success,
  error_message, response_time_ms, failover_attempts, model, prompt_tokens, completion_tokens,
  total_tokens, cost_usd, output_tokens_per_second, input_tokens, cache_read_input_tokens,
  cache_creation_input_tokens, output_tokens, agent_used, api_key_id, api_key_name, project,
  billing_type, combo_name, original_model, applied_model, project_attribution_source,
  agent_attribution_source, stream_terminal_state, client_session_id)
VALUES
  ('9f0e1d2c-0001', 1767225000000, 'POST', '/v1/messages', '0b6f2c1e-claude-max', 200, 1,
   NULL, 5321, 0, 'claude-sonnet-4-5-20250929', 15230, 812, 16042, 0.0213, 152.6, 30, 15000,
   200, 812, 'code-reviewer', 'key-admin', 'laptop', 'better-ccflare', 'plan', NULL,
   'claude-sonnet-4-5', 'claude-sonnet-4-5-20250929', 'header', 'system_prompt', 'completed', 'sess-abc'),
  ('9f0e1d2c-0002', 1767225060000, 'POST', '/v1/messages', '5a1d9e77-console', 429, 0,
   'rate_limited', 120, 1, 'claude-opus-4-1', 0, 0, 0, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL,
   NULL, 'api', 'fallback-combo', NULL, NULL, NULL, NULL, NULL, NULL),
  ('9f0e1d2c-0003', 1767225120000, 'GET', '/v1/models', NULL, 503, 0,
   'All accounts are rate limited', 3, 2, NULL, 0, 0, 0, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL,
   NULL, 'api', NULL, NULL, NULL, NULL, NULL, 'an_unknown_terminal_state', NULL),
  ('9f0e1d2c-0004', 1700000000000, 'POST', '/v1/messages', '0b6f2c1e-claude-max', 200, 1,
   NULL, 800, 0, 'claude-3-5-haiku', 120, 40, 160, 0.0003, 50.0, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

INSERT INTO request_payloads (id, json, timestamp) VALUES
  ('9f0e1d2c-0001', '{"request":{"headers":{},"body":"eyJtb2RlbCI6ImNsYXVkZSJ9"},"response":{"status":200,"headers":{},"body":null},"meta":{"accountId":"0b6f2c1e-claude-max","timestamp":1767225000000,"success":true,"isStream":true}}', 1767225000000),
  ('9f0e1d2c-0002', '{"request":{"headers":{},"body":null},"response":{"status":429,"headers":{},"body":null},"meta":{"success":false}}', 1767225060000),
  ('orphan-payload', '{"request":null}', 1767000000000);

INSERT INTO oauth_sessions VALUES
  ('oauth-sess-1', 'new-max', 'REFERENCE-PKCE-VERIFIER-0005', 'max', NULL, 2, 1767225000000, 1767225600000);

INSERT INTO api_keys VALUES
  ('key-admin', 'laptop', '0011aabb:ffeeddcc', 'Ab3dE5g7', 1761000000000, 1767225000000, 1200, 1, 'admin'),
  ('key-ci', 'ci', '2233ccdd:bbaa9988', 'Zz9yX8w7', 1762000000000, NULL, 0, 0, 'api-only');

INSERT INTO agent_preferences VALUES ('code-reviewer', 'claude-opus-4-1', 1765000000000);

INSERT INTO combos VALUES ('combo-1', 'fallback-combo', 'opus then sonnet', 1, 1764000000000, 1764000000000);
INSERT INTO combo_slots VALUES
  ('slot-1', 'combo-1', '0b6f2c1e-claude-max', 'claude-opus-4-1', 0, 1),
  ('slot-2', 'combo-1', '5a1d9e77-console', '', 1, 1);
INSERT INTO combo_family_assignments VALUES
  ('fable', NULL, 0), ('opus', 'combo-1', 1), ('sonnet', NULL, 0), ('haiku', NULL, 0);

INSERT INTO strategies VALUES ('session', '{"sessionDurationMs":18000000}', 1763000000000);

INSERT INTO usage_snapshots VALUES
  ('0b6f2c1e-claude-max', 1767224000000, 'five_hour', 42.0, 1767240000000),
  ('0b6f2c1e-claude-max', 1767224000000, 'seven_day', 63.5, 1767600000000),
  ('0b6f2c1e-claude-max', 1767224090000, 'five_hour', 43.0, 1767240000000),
  ('0b6f2c1e-claude-max', 1767224090000, 'seven_day', 63.5, 1767600000000);

INSERT INTO model_translations VALUES
  ('mt-1', 'claude-sonnet-4-5', 'anthropic.claude-sonnet-4-5-v1:0', 1, 0, 1763000000000, 1763000000000);

INSERT INTO alerts VALUES
  ('alert-1', 1767000000000, 'cost', 'warning', 'Daily cost high', 'Cost passed $50', 51.2, 50.0,
   'work-max', NULL, NULL, NULL, 0);

INSERT INTO instance_heartbeats VALUES
  ('inst-1', 'workstation', 4242, 1767000000000, 1767225000000, 'bun 1.2.21', 'sqlite');
