package diffstore

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"modernc.org/sqlite"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", pure Go
)

//go:embed migrations
var migrationsFS embed.FS

// Backend is where records live. Both implementations share this code path
// through database/sql and differ only in their dialect (see sqlDialect).
// Implementations are safe for concurrent use; every method does I/O and
// is bounded by its context.
type Backend interface {
	// Migrate brings the schema to the newest version in migrations/.
	// Idempotent and safe when several replicas run it at once.
	Migrate(ctx context.Context) error
	// Insert writes records in one transaction.
	Insert(ctx context.Context, recs []Record) error
	// Scan calls fn for each record matching f, oldest first, streaming
	// (it never holds the result set in memory). fn's error stops the scan.
	Scan(ctx context.Context, f Filter, fn func(*Record) error) error
	// Prune deletes records older than before (zero: none), then the
	// oldest until the store's size is under maxBytes (0: no limit).
	Prune(ctx context.Context, before time.Time, maxBytes int64) (byAge, bySize int64, err error)
	// Close releases the connections.
	Close() error
}

type sqlDialect struct {
	name string
	// ph returns the n-th (1-based) placeholder.
	ph func(n int) string
	// lock serialises migrations across replicas on conn until unlock.
	lock func(ctx context.Context, conn *sql.Conn) (unlock func(), err error)
	// usedBytes is the store's size as retention counts it.
	usedBytes func(ctx context.Context, db *sql.DB) (int64, error)
}

// sqlBackend is the Backend on database/sql.
type sqlBackend struct {
	db *sql.DB
	d  sqlDialect
}

// openSQLite opens (creating) the SQLite file at path. maxPages > 0 caps
// the file (SQLITE_FULL past it, which the writer counts as disk_full).
func openSQLite(file string, maxPages int) (*sqlBackend, error) {
	q := url.Values{}
	for _, p := range []string{"busy_timeout(5000)", "journal_mode(WAL)", "synchronous(NORMAL)", "auto_vacuum(INCREMENTAL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	if maxPages > 0 {
		q.Add("_pragma", "max_page_count("+strconv.Itoa(maxPages)+")")
	}
	db, err := sql.Open("sqlite", "file:"+file+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", file, err)
	}
	db.SetMaxOpenConns(4)
	return &sqlBackend{db: db, d: sqlDialect{
		name: "sqlite",
		ph:   func(int) string { return "?" },
		lock: func(context.Context, *sql.Conn) (func(), error) { return func() {}, nil }, // one writer per file
		usedBytes: func(ctx context.Context, db *sql.DB) (int64, error) {
			var pages, free, size int64
			err := db.QueryRowContext(ctx, "SELECT (SELECT page_count FROM pragma_page_count()), (SELECT freelist_count FROM pragma_freelist_count()), (SELECT page_size FROM pragma_page_size())").Scan(&pages, &free, &size)
			return (pages - free) * size, err
		},
	}}, nil
}

// openPostgres opens a pool on dsn (a libpq URL or key=value string). It
// does not connect: an unreachable server shows up as write errors.
func openPostgres(dsn string) (*sqlBackend, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db.SetMaxOpenConns(4)
	db.SetConnMaxIdleTime(time.Minute)
	return &sqlBackend{db: db, d: sqlDialect{
		name: "postgres",
		ph:   func(n int) string { return "$" + strconv.Itoa(n) },
		lock: func(ctx context.Context, conn *sql.Conn) (func(), error) {
			// Replicas starting together migrate one at a time (even
			// CREATE TABLE IF NOT EXISTS races in PostgreSQL).
			if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(7337001)"); err != nil {
				return nil, err
			}
			return func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(7337001)") }, nil
		},
		usedBytes: func(ctx context.Context, db *sql.DB) (int64, error) {
			// Live rows times their average size: the relation size would
			// not shrink after a DELETE until VACUUM, and retention would
			// then delete everything.
			var n int64
			var avg sql.NullFloat64
			if err := db.QueryRowContext(ctx, "SELECT count(*) FROM diffs").Scan(&n); err != nil {
				return 0, err
			}
			err := db.QueryRowContext(ctx, "SELECT avg(pg_column_size(d.*)) FROM (SELECT * FROM diffs ORDER BY id DESC LIMIT 1000) d").Scan(&avg)
			return int64(float64(n) * avg.Float64), err
		},
	}}, nil
}

func (b *sqlBackend) Close() error { return b.db.Close() }

// Migrate applies migrations/<dialect>/NNNN_*.sql not yet recorded in
// schema_migrations, each in its own transaction.
func (b *sqlBackend) Migrate(ctx context.Context) error {
	dir := path.Join("migrations", b.d.name)
	entries, err := fs.ReadDir(migrationsFS, dir)
	if err != nil {
		return fmt.Errorf("%s: migrations: %w", b.d.name, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	conn, err := b.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("%s: connect: %w", b.d.name, err)
	}
	defer conn.Close()
	unlock, err := b.d.lock(ctx, conn)
	if err != nil {
		return fmt.Errorf("%s: migration lock: %w", b.d.name, err)
	}
	defer unlock()
	if _, err := conn.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_us BIGINT NOT NULL)"); err != nil {
		return fmt.Errorf("%s: create schema_migrations: %w", b.d.name, err)
	}
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil {
			return fmt.Errorf("%s: migration %s: name must start with a number and '_'", b.d.name, e.Name())
		}
		if err := b.apply(ctx, conn, dir, e.Name(), version); err != nil {
			return fmt.Errorf("%s: migration %s: %w", b.d.name, e.Name(), err)
		}
	}
	return nil
}

func (b *sqlBackend) apply(ctx context.Context, conn *sql.Conn, dir, name string, version int) error {
	body, err := migrationsFS.ReadFile(path.Join(dir, name))
	if err != nil {
		return err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations WHERE version = "+b.d.ph(1), version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	for _, stmt := range strings.Split(string(body), ";") {
		if strings.TrimSpace(stripComments(stmt)) == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_us) VALUES ("+b.d.ph(1)+", "+b.d.ph(2)+", "+b.d.ph(3)+")",
		version, name, time.Now().UnixMicro()); err != nil {
		return err
	}
	return tx.Commit()
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// columns is the table's column order, shared by insert and select.
var columns = []string{"ts_us", "request_id", "trace_id", "rollout_id", "rollout_step", "protocol", "model", "canary_model",
	"model_version", "mode", "outcome", "side", "reason", "detail", "instances", "agreed", "weight", "stable_status",
	"canary_status", "stable_failure", "canary_failure", "stable_latency_us", "canary_latency_us", "latency_delta_us",
	"max_abs_diff", "max_js", "stable_label", "canary_label", "stable_output", "canary_output", "instance_diffs",
	"input_fingerprint", "inputs", "input_raw"}

func (b *sqlBackend) Insert(ctx context.Context, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	phs := make([]string, len(columns))
	for i := range phs {
		phs[i] = b.d.ph(i + 1)
	}
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	stmt, err := tx.PrepareContext(ctx, "INSERT INTO diffs ("+strings.Join(columns, ", ")+") VALUES ("+strings.Join(phs, ", ")+")")
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := range recs {
		if _, err := stmt.ExecContext(ctx, args(&recs[i])...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func nullFloat(f float64) sql.NullFloat64 {
	return sql.NullFloat64{Float64: f, Valid: !math.IsNaN(f) && !math.IsInf(f, 0)}
}

func nullText(b []byte) sql.NullString { return sql.NullString{String: string(b), Valid: len(b) > 0} }

func args(r *Record) []any {
	var delta sql.NullInt64
	if r.Paired {
		delta = sql.NullInt64{Int64: r.LatencyDelta.Microseconds(), Valid: true}
	}
	var diffs, inputs []byte
	if len(r.InstanceDiffs) > 0 {
		diffs, _ = json.Marshal(r.InstanceDiffs)
	}
	if len(r.Inputs) > 0 {
		inputs, _ = json.Marshal(r.Inputs)
	}
	return []any{r.Time.UnixMicro(), r.RequestID, r.TraceID, r.RolloutID, r.RolloutStep, r.Protocol, r.Model, r.CanaryModel,
		r.ModelVersion, r.Mode, r.Outcome, r.Side, r.Reason, r.Detail, r.Instances, r.Agreed, r.Weight, r.StableStatus,
		r.CanaryStatus, r.StableFailure, r.CanaryFailure, r.StableLatency.Microseconds(), r.CanaryLatency.Microseconds(), delta,
		nullFloat(r.MaxAbsDiff), nullFloat(r.MaxJS), r.StableLabel, r.CanaryLabel, nullText(r.StableOutput), nullText(r.CanaryOutput), nullText(diffs),
		r.InputFingerprint, nullText(inputs), sql.NullString{String: r.InputRaw, Valid: r.InputRaw != ""}}
}

func (b *sqlBackend) Scan(ctx context.Context, f Filter, fn func(*Record) error) error {
	var where []string
	var params []any
	add := func(cond string, v any) {
		params = append(params, v)
		where = append(where, strings.ReplaceAll(cond, "?", b.d.ph(len(params))))
	}
	if !f.Since.IsZero() {
		add("ts_us >= ?", f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		add("ts_us < ?", f.Until.UnixMicro())
	}
	if f.Model != "" {
		add("model = ?", f.Model)
	}
	if f.RolloutID != "" {
		add("rollout_id = ?", f.RolloutID)
	}
	if len(f.Outcomes) > 0 {
		var ors []string
		for _, o := range f.Outcomes {
			params = append(params, o)
			ors = append(ors, "outcome = "+b.d.ph(len(params)))
		}
		where = append(where, "("+strings.Join(ors, " OR ")+")")
	}
	q := "SELECT id, " + strings.Join(columns, ", ") + " FROM diffs"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY ts_us, id"
	if f.Limit > 0 {
		q += " LIMIT " + strconv.Itoa(f.Limit)
	}
	rows, err := b.db.QueryContext(ctx, q, params...)
	if err != nil {
		return fmt.Errorf("%s: query diffs: %w", b.d.name, err)
	}
	defer rows.Close()
	var r Record
	for rows.Next() {
		if err := scanRecord(rows, &r); err != nil {
			return fmt.Errorf("%s: read diff: %w", b.d.name, err)
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return rows.Err()
}

func scanRecord(rows *sql.Rows, r *Record) error {
	var ts, sl, cl int64
	var delta sql.NullInt64
	var mad, mjs sql.NullFloat64
	var so, co, diffs, inputs, raw sql.NullString
	*r = Record{}
	if err := rows.Scan(&r.ID, &ts, &r.RequestID, &r.TraceID, &r.RolloutID, &r.RolloutStep, &r.Protocol, &r.Model, &r.CanaryModel,
		&r.ModelVersion, &r.Mode, &r.Outcome, &r.Side, &r.Reason, &r.Detail, &r.Instances, &r.Agreed, &r.Weight, &r.StableStatus,
		&r.CanaryStatus, &r.StableFailure, &r.CanaryFailure, &sl, &cl, &delta, &mad, &mjs, &r.StableLabel, &r.CanaryLabel,
		&so, &co, &diffs, &r.InputFingerprint, &inputs, &raw); err != nil {
		return err
	}
	r.Time = time.UnixMicro(ts).UTC()
	r.StableLatency, r.CanaryLatency = time.Duration(sl)*time.Microsecond, time.Duration(cl)*time.Microsecond
	r.Paired = delta.Valid
	r.LatencyDelta = time.Duration(delta.Int64) * time.Microsecond
	r.MaxAbsDiff, r.MaxJS = math.NaN(), math.NaN()
	if mad.Valid {
		r.MaxAbsDiff = mad.Float64
	}
	if mjs.Valid {
		r.MaxJS = mjs.Float64
	}
	if so.Valid {
		r.StableOutput = json.RawMessage(so.String)
	}
	if co.Valid {
		r.CanaryOutput = json.RawMessage(co.String)
	}
	if diffs.Valid {
		if err := json.Unmarshal([]byte(diffs.String), &r.InstanceDiffs); err != nil {
			return fmt.Errorf("instance_diffs of record %d: %w", r.ID, err)
		}
	}
	if inputs.Valid {
		if err := json.Unmarshal([]byte(inputs.String), &r.Inputs); err != nil {
			return fmt.Errorf("inputs of record %d: %w", r.ID, err)
		}
	}
	r.InputRaw = raw.String
	return nil
}

func (b *sqlBackend) Prune(ctx context.Context, before time.Time, maxBytes int64) (byAge, bySize int64, err error) {
	if !before.IsZero() {
		res, err := b.db.ExecContext(ctx, "DELETE FROM diffs WHERE ts_us < "+b.d.ph(1), before.UnixMicro())
		if err != nil {
			return 0, 0, fmt.Errorf("%s: delete old diffs: %w", b.d.name, err)
		}
		byAge, _ = res.RowsAffected()
	}
	// A few rounds: each deletes the estimated excess (plus 5%) oldest rows.
	for round := 0; maxBytes > 0 && round < 8; round++ {
		used, err := b.d.usedBytes(ctx, b.db)
		if err != nil {
			return byAge, bySize, fmt.Errorf("%s: store size: %w", b.d.name, err)
		}
		if used <= maxBytes {
			break
		}
		var n int64
		if err := b.db.QueryRowContext(ctx, "SELECT count(*) FROM diffs").Scan(&n); err != nil || n == 0 {
			break
		}
		excess := int64(math.Ceil(float64(used-maxBytes)/(float64(used)/float64(n))*1.05)) + 1
		res, err := b.db.ExecContext(ctx, "DELETE FROM diffs WHERE id IN (SELECT id FROM diffs ORDER BY id LIMIT "+b.d.ph(1)+")", excess)
		if err != nil {
			return byAge, bySize, fmt.Errorf("%s: delete oldest diffs: %w", b.d.name, err)
		}
		k, _ := res.RowsAffected()
		bySize += k
		if b.d.name == "sqlite" {
			// Hand freed pages back to the file system (auto_vacuum=INCREMENTAL).
			if _, err := b.db.ExecContext(ctx, "PRAGMA incremental_vacuum"); err != nil {
				return byAge, bySize, fmt.Errorf("sqlite: incremental_vacuum: %w", err)
			}
		}
	}
	return byAge, bySize, nil
}

// isDiskFull tells a full disk (or a capped SQLite file) from other write
// errors, for the dropped-records metric.
func isDiskFull(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == 13 { // SQLITE_FULL
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "53100" { // disk_full
		return true
	}
	return false
}
