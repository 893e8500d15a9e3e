"""The PostgreSQL tables and indexes as the first migration created them (later migrations in
``_migrations`` change them).

Column names are those of the SQLite schema (and so of the reference better-ccflare), so rows
copy across one to one and every query reads the same names. The types are PostgreSQL's own:
epoch-millisecond ``BIGINT`` timestamps, ``BOOLEAN`` flags, ``DOUBLE PRECISION`` costs (SQLite's
``REAL`` is eight bytes too, so sums agree), and ``TEXT COLLATE "C"`` everywhere, so text sorts by
code point as it does in SQLite whatever the database's default collation is.

SQLite's ``rowid`` breaks ties (the newest request of a session, snapshot order); here an
identity column ``seq`` does, assigned when a row is first inserted and kept by upserts.
"""

from __future__ import annotations

__all__ = ["SCHEMA"]

_TEXT = 'TEXT COLLATE "C"'

SCHEMA = (
    f"""
CREATE TABLE IF NOT EXISTS accounts (
  id {_TEXT} PRIMARY KEY,
  name {_TEXT} NOT NULL,
  provider {_TEXT} DEFAULT 'anthropic',
  api_key {_TEXT},
  refresh_token {_TEXT},
  access_token {_TEXT},
  expires_at BIGINT,
  created_at BIGINT NOT NULL,
  last_used BIGINT,
  request_count BIGINT DEFAULT 0,
  total_requests BIGINT DEFAULT 0,
  priority BIGINT DEFAULT 0,
  rate_limited_until BIGINT,
  session_start BIGINT,
  session_request_count BIGINT DEFAULT 0,
  paused BOOLEAN DEFAULT FALSE,
  rate_limit_reset BIGINT,
  rate_limit_status {_TEXT},
  rate_limit_remaining BIGINT,
  auto_fallback_enabled BOOLEAN DEFAULT FALSE,
  custom_endpoint {_TEXT},
  auto_refresh_enabled BOOLEAN DEFAULT FALSE,
  model_mappings {_TEXT},
  model_fallbacks {_TEXT},
  cross_region_mode {_TEXT} DEFAULT 'geographic',
  auto_pause_on_overage_enabled BOOLEAN DEFAULT FALSE,
  peak_hours_pause_enabled BOOLEAN NOT NULL DEFAULT FALSE,
  pause_reason {_TEXT},
  requires_reauth BOOLEAN DEFAULT FALSE,
  billing_type {_TEXT},
  refresh_token_issued_at BIGINT,
  rate_limited_reason {_TEXT},
  rate_limited_at BIGINT,
  consecutive_rate_limits BIGINT NOT NULL DEFAULT 0
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_accounts_unique_name_provider_endpoint "
    "ON accounts (name, provider, COALESCE(custom_endpoint, ''))",
    f"""
CREATE TABLE IF NOT EXISTS requests (
  id {_TEXT} PRIMARY KEY,
  seq BIGINT GENERATED ALWAYS AS IDENTITY,
  timestamp BIGINT NOT NULL,
  method {_TEXT} NOT NULL,
  path {_TEXT} NOT NULL,
  account_used {_TEXT},
  status_code BIGINT,
  success BOOLEAN,
  error_message {_TEXT},
  response_time_ms BIGINT,
  failover_attempts BIGINT DEFAULT 0,
  model {_TEXT},
  prompt_tokens BIGINT DEFAULT 0,
  completion_tokens BIGINT DEFAULT 0,
  total_tokens BIGINT DEFAULT 0,
  cost_usd DOUBLE PRECISION DEFAULT 0,
  output_tokens_per_second DOUBLE PRECISION,
  input_tokens BIGINT DEFAULT 0,
  cache_read_input_tokens BIGINT DEFAULT 0,
  cache_creation_input_tokens BIGINT DEFAULT 0,
  output_tokens BIGINT DEFAULT 0,
  agent_used {_TEXT},
  api_key_id {_TEXT},
  api_key_name {_TEXT},
  project {_TEXT},
  billing_type {_TEXT} DEFAULT 'api',
  combo_name {_TEXT},
  original_model {_TEXT},
  applied_model {_TEXT},
  project_attribution_source {_TEXT},
  agent_attribution_source {_TEXT},
  stream_terminal_state {_TEXT},
  client_session_id {_TEXT},
  cache_creation_1h_input_tokens BIGINT DEFAULT 0
)""",
    "CREATE INDEX IF NOT EXISTS idx_requests_timestamp ON requests (timestamp)",
    "CREATE INDEX IF NOT EXISTS idx_requests_account_timestamp "
    "ON requests (account_used, timestamp)",
    "CREATE INDEX IF NOT EXISTS idx_requests_model_timestamp ON requests (model, timestamp) "
    "WHERE model IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS idx_requests_api_key_timestamp "
    "ON requests (api_key_id, timestamp) WHERE api_key_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS idx_requests_client_session "
    "ON requests (client_session_id, timestamp) WHERE client_session_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS idx_requests_failed ON requests (timestamp) "
    "WHERE NOT COALESCE(success, FALSE)",
    f"""
CREATE TABLE IF NOT EXISTS request_payloads (
  -- Checked at commit: the writer may send a batch's payloads before its request rows.
  id {_TEXT} PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
  json {_TEXT} NOT NULL,
  timestamp BIGINT
)""",
    "CREATE INDEX IF NOT EXISTS idx_request_payloads_timestamp ON request_payloads (timestamp)",
    f"""
CREATE TABLE IF NOT EXISTS oauth_sessions (
  id {_TEXT} PRIMARY KEY,
  account_name {_TEXT} NOT NULL,
  verifier {_TEXT} NOT NULL,
  mode {_TEXT} NOT NULL,
  custom_endpoint {_TEXT},
  priority BIGINT DEFAULT 0,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS idx_oauth_sessions_expires ON oauth_sessions (expires_at)",
    f"""
CREATE TABLE IF NOT EXISTS api_keys (
  id {_TEXT} PRIMARY KEY,
  name {_TEXT} NOT NULL UNIQUE,
  hashed_key {_TEXT} NOT NULL UNIQUE,
  prefix_last_8 {_TEXT} NOT NULL,
  created_at BIGINT NOT NULL,
  last_used BIGINT,
  usage_count BIGINT DEFAULT 0,
  is_active BOOLEAN DEFAULT TRUE,
  role {_TEXT} NOT NULL DEFAULT 'api-only'
)""",
    f"""
CREATE TABLE IF NOT EXISTS agent_preferences (
  agent_id {_TEXT} PRIMARY KEY,
  model {_TEXT} NOT NULL,
  updated_at BIGINT NOT NULL
)""",
    f"""
CREATE TABLE IF NOT EXISTS strategies (
  name {_TEXT} PRIMARY KEY,
  config {_TEXT} NOT NULL,
  updated_at BIGINT NOT NULL
)""",
    f"""
CREATE TABLE IF NOT EXISTS usage_snapshots (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_id {_TEXT} NOT NULL,
  timestamp BIGINT NOT NULL,
  window_key {_TEXT} NOT NULL,
  utilization DOUBLE PRECISION,
  resets_at BIGINT
)""",
    "CREATE INDEX IF NOT EXISTS idx_usage_snapshots_acct_win_time "
    "ON usage_snapshots (account_id, window_key, timestamp)",
    "CREATE INDEX IF NOT EXISTS idx_usage_snapshots_acct_time "
    "ON usage_snapshots (account_id, timestamp)",
    "CREATE INDEX IF NOT EXISTS idx_usage_snapshots_ts ON usage_snapshots (timestamp)",
)
"""Migration 0001: every statement, in order; each is idempotent."""
