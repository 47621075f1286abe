package diffstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// seeded is a store with 12 pairs: 4 disagreements (1 -> 2), 1 canary
// timeout and 7 agreements, one second apart from t0.
func seeded(t *testing.T) *Store {
	t.Helper()
	s := openSQLiteStore(t, Config{AgreementSample: 1, Redaction: Redaction{FingerprintKey: []byte("k"), Fields: []Field{{Name: "region"}}}}, nil)
	for i := range 12 {
		switch {
		case i%3 == 0:
			feed(s, exchange(i, "1", "2"))
		case i == 5:
			ex := exchange(i, "1", "1")
			ex.Canary.Status, ex.Canary.Body, ex.Canary.Failure = 0, nil, "timeout"
			feed(s, ex)
		default:
			feed(s, exchange(i, "1", "1"))
		}
	}
	all(t, s, Filter{}) // flush
	return s
}

func TestExportJSONLAndCSV(t *testing.T) {
	s := seeded(t)
	ctx := context.Background()
	var jl bytes.Buffer
	n, err := Export(ctx, s, Filter{Outcomes: []string{"disagree"}}, "jsonl", &jl)
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	sc := bufio.NewScanner(&jl)
	var rows []map[string]any
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		rows = append(rows, m)
	}
	require.Len(t, rows, 4)
	assert.Equal(t, "2026-03-01T12:00:00Z", rows[0]["time"], "UTC timestamps")
	assert.Equal(t, "2026-03-01T12:00:03Z", rows[1]["time"])
	assert.Equal(t, "disagree", rows[0]["outcome"])
	assert.Equal(t, 2.0, rows[0]["latency_delta_ms"])
	assert.Equal(t, `{"region":"north"}`, rows[0]["inputs"])
	var keys []string
	for k := range rows[0] {
		keys = append(keys, k)
	}
	assert.ElementsMatch(t, ExportColumns, keys, "JSONL carries exactly the documented columns")

	var cb bytes.Buffer
	n, err = Export(ctx, s, Filter{Since: t0.Add(5 * time.Second)}, "csv", &cb)
	require.NoError(t, err)
	assert.Equal(t, 7, n)
	recs, err := csv.NewReader(&cb).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 8)
	assert.Equal(t, ExportColumns, recs[0])
	assert.Equal(t, "2026-03-01T12:00:05Z", recs[1][1])
	assert.Equal(t, "canary_timeout", recs[1][11])
	assert.Equal(t, "", recs[1][24], "no latency delta without a paired answer: empty, not 0")

	_, err = Export(ctx, s, Filter{}, "xlsx", &cb)
	assert.ErrorContains(t, err, `"xlsx"`)
}

// DuckDBDir is where hack/deps.d/50-report.sh installs @duckdb/node-api.
func duckDBDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../.cache/duckdb")
	require.NoError(t, err)
	_, nodeErr := exec.LookPath("node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules/@duckdb/node-api")); err != nil || nodeErr != nil {
		msg := "node or @duckdb/node-api missing (run hack/deps.sh)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPING: " + msg)
	}
	return dir
}

// duckdb runs queries in DuckDB and returns each result's rows.
func duckdb(t *testing.T, queries ...string) [][]map[string]any {
	t.Helper()
	dir := duckDBDir(t)
	script, err := filepath.Abs("testdata/duckdb_query.mjs")
	require.NoError(t, err)
	// The script is copied next to node_modules so Node resolves the package.
	local := filepath.Join(dir, "duckdb_query.mjs")
	b, err := os.ReadFile(script)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(local, b, 0o644))
	q, err := json.Marshal(queries)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", local, string(q))
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "duckdb: %s", stderr.String())
	var res [][]map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var rows []map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rows), line)
		res = append(res, rows)
	}
	require.Len(t, res, len(queries))
	return res
}

func TestParquetExportReadByDuckDB(t *testing.T) {
	s := seeded(t)
	path := filepath.Join(t.TempDir(), "diffs.parquet")
	f, err := os.Create(path)
	require.NoError(t, err)
	n, err := Export(context.Background(), s, Filter{}, "parquet", f)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.Equal(t, 12, n)

	src := "read_parquet('" + path + "')"
	res := duckdb(t,
		"SELECT count(*) AS n, sum(weight) AS w FROM "+src,
		"SELECT outcome, count(*) AS n FROM "+src+" GROUP BY outcome ORDER BY outcome",
		"SELECT strftime(time, '%Y-%m-%dT%H:%M:%S') AS t, typeof(time) AS tt, request_id, stable_label, canary_label, latency_delta_ms, "+
			"stable_latency_ms, json_extract_string(inputs, '$.region') AS region, length(input_fingerprint) AS fp FROM "+src+" WHERE outcome = 'disagree' ORDER BY time LIMIT 1",
		"SELECT latency_delta_ms IS NULL AS no_delta, canary_failure FROM "+src+" WHERE outcome = 'canary_timeout'",
		"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+src+") WHERE column_name IN ('time','instances','weight','latency_delta_ms')  ORDER BY column_name",
	)
	assert.Equal(t, []map[string]any{{"n": "12", "w": 12.0}}, res[0])
	assert.Equal(t, []map[string]any{{"outcome": "agree", "n": "7"}, {"outcome": "canary_timeout", "n": "1"}, {"outcome": "disagree", "n": "4"}}, res[1])
	assert.Equal(t, []map[string]any{{"t": "2026-03-01T12:00:00", "tt": "TIMESTAMP WITH TIME ZONE", "request_id": "req-0000",
		"stable_label": "1", "canary_label": "2", "latency_delta_ms": 2.0, "stable_latency_ms": 10.0, "region": "north", "fp": "64"}}, res[2])
	assert.Equal(t, []map[string]any{{"no_delta": true, "canary_failure": "timeout"}}, res[3])
	assert.Equal(t, []map[string]any{
		{"column_name": "instances", "column_type": "INTEGER"},
		{"column_name": "latency_delta_ms", "column_type": "DOUBLE"},
		{"column_name": "time", "column_type": "TIMESTAMP WITH TIME ZONE"},
		{"column_name": "weight", "column_type": "DOUBLE"},
	}, res[4])
}
