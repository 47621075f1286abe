-- Diff records (see internal/diffstore.Record and docs/report.md).
-- Times are microseconds since the Unix epoch (UTC), durations microseconds.
CREATE TABLE diffs (
  id                INTEGER PRIMARY KEY AUTOINCREMENT,
  ts_us             BIGINT  NOT NULL,
  request_id        TEXT    NOT NULL,
  trace_id          TEXT    NOT NULL,
  rollout_id        TEXT    NOT NULL,
  rollout_step      INTEGER NOT NULL,
  protocol          TEXT    NOT NULL,
  model             TEXT    NOT NULL,
  canary_model      TEXT    NOT NULL,
  model_version     TEXT    NOT NULL,
  mode              TEXT    NOT NULL,
  outcome           TEXT    NOT NULL,
  side              TEXT    NOT NULL,
  reason            TEXT    NOT NULL,
  detail            TEXT    NOT NULL,
  instances         INTEGER NOT NULL,
  agreed            INTEGER NOT NULL,
  weight            DOUBLE PRECISION NOT NULL,
  stable_status     INTEGER NOT NULL,
  canary_status     INTEGER NOT NULL,
  stable_failure    TEXT    NOT NULL,
  canary_failure    TEXT    NOT NULL,
  stable_latency_us BIGINT  NOT NULL,
  canary_latency_us BIGINT  NOT NULL,
  latency_delta_us  BIGINT,
  max_abs_diff      DOUBLE PRECISION,
  max_js            DOUBLE PRECISION,
  stable_label      TEXT    NOT NULL,
  canary_label      TEXT    NOT NULL,
  stable_output     TEXT,
  canary_output     TEXT,
  instance_diffs    TEXT,
  input_fingerprint TEXT    NOT NULL,
  inputs            TEXT,
  input_raw         TEXT
);
CREATE INDEX diffs_ts ON diffs (ts_us);
CREATE INDEX diffs_outcome_ts ON diffs (outcome, ts_us);
CREATE INDEX diffs_rollout_ts ON diffs (rollout_id, ts_us);
