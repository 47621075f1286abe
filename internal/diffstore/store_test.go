package diffstore

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowsplit/shadowsplit/internal/models"
)

func TestRecordsEveryDisagreementAndSampledAgreements(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openSQLiteStore(t, Config{AgreementSample: 0.25}, reg)
	s.SetRollout("ro-1", 2)
	for i := range 40 {
		if i%4 == 0 {
			feed(s, exchange(i, "1", "2")) // 10 disagreements
		} else {
			feed(s, exchange(i, "1", "1")) // 30 agreements
		}
	}
	recs := all(t, s, Filter{})
	var dis, agree int
	for _, r := range recs {
		switch r.Outcome {
		case "disagree":
			dis++
			assert.Equal(t, 1.0, r.Weight)
			assert.Equal(t, "1", r.StableLabel)
			assert.Equal(t, "2", r.CanaryLabel)
			assert.JSONEq(t, `[1]`, string(r.StableOutput))
			assert.JSONEq(t, `[2]`, string(r.CanaryOutput))
		case "agree":
			agree++
			assert.Equal(t, 4.0, r.Weight, "a sampled agreement stands for 1/rate pairs")
		}
		assert.Equal(t, "ro-1", r.RolloutID)
		assert.Equal(t, 2, r.RolloutStep)
		assert.Equal(t, time.UTC, r.Time.Location())
		assert.Len(t, r.InputFingerprint, 64)
		assert.Equal(t, 2*time.Millisecond, r.LatencyDelta)
	}
	assert.Equal(t, 10, dis)
	assert.Equal(t, 30/4, agree, "exactly a quarter of the agreements, deterministically")
	assert.Equal(t, float64(30-agree), testutil.ToFloat64(s.m.sampledOut))
	assert.Equal(t, float64(len(recs)), testutil.ToFloat64(s.m.written))

	// Filters: outcome and time.
	assert.Len(t, all(t, s, Filter{Outcomes: []string{"disagree"}}), 10)
	assert.Len(t, all(t, s, Filter{Since: t0.Add(20 * time.Second), Outcomes: []string{"disagree"}}), 5)
}

func TestFailureOutcomesAreAlwaysKept(t *testing.T) {
	s := openSQLiteStore(t, Config{AgreementSample: -1}, nil)
	ex := exchange(1, "1", "1")
	ex.Canary = models.Response{Failure: models.FailureTimeout, Latency: time.Second}
	feed(s, ex)
	feed(s, exchange(2, "1", "1")) // agreement, sample rate none
	recs := all(t, s, Filter{})
	require.Len(t, recs, 1)
	assert.Equal(t, "canary_timeout", recs[0].Outcome)
	assert.Equal(t, "timeout", recs[0].CanaryFailure)
	assert.False(t, recs[0].Paired)
	assert.Nil(t, recs[0].CanaryOutput)
}

// The privacy promise: a request field that is not allow-listed never
// reaches the database file, the WAL or anything next to them.
func TestNonAllowListedFieldNeverReachesDisk(t *testing.T) {
	dir := t.TempDir()
	idx := 0
	s := openSQLiteStore(t, Config{SQLitePath: filepath.Join(dir, "diffs.db"), AgreementSample: 1,
		Redaction: Redaction{FingerprintKey: []byte("k"), Fields: []Field{
			{Name: "age", Buckets: []float64{18, 30, 65}},
			{Name: "region"},
			{Name: "first", Index: &idx}, // array instances only: absent here
		}}}, nil)
	for i := range 50 {
		feed(s, exchange(i, "1", itoa(i%3)))
	}
	recs := all(t, s, Filter{})
	require.Len(t, recs, 50)
	assert.Equal(t, map[string]any{"age": "[18,30)", "region": "north"}, recs[0].Inputs)
	assert.Equal(t, "[18,30)", recs[0].InstanceDiffs[0].Inputs["age"])
	assert.Empty(t, recs[0].InputRaw)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Close(ctx))
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		require.NoError(t, err)
		assert.False(t, bytes.Contains(b, []byte("SECRET-SSN")), "%s holds a value of the non-allow-listed field ssn", f.Name())
		assert.False(t, bytes.Contains(b, []byte(`"age":2`)), "%s holds an exact age though age is bucketed", f.Name())
	}
	// The control: the same search does find allow-listed values, so the
	// search itself works (the file is not encrypted or compressed).
	b, err := os.ReadFile(filepath.Join(dir, "diffs.db"))
	require.NoError(t, err)
	assert.True(t, bytes.Contains(b, []byte("[18,30)")))
}

func TestRawInputsOnlyWhenEnabled(t *testing.T) {
	s := openSQLiteStore(t, Config{AgreementSample: 1, Redaction: Redaction{StoreRaw: true, MaxRawBytes: 20}}, nil)
	feed(s, exchange(1, "1", "2"))
	recs := all(t, s, Filter{})
	require.Len(t, recs, 1)
	assert.Equal(t, `{"instances":[{"age"`, recs[0].InputRaw)
}

func TestFingerprintIsKeyedAndCanonical(t *testing.T) {
	a := newRedactor(Redaction{FingerprintKey: []byte("key-a")}, 0)
	b := newRedactor(Redaction{FingerprintKey: []byte("key-b")}, 0)
	x := a.redact(models.ProtocolV1, []byte(`{"instances":[{"x":1,"y":"z"}]}`))
	y := a.redact(models.ProtocolV1, []byte(`{ "instances" : [ {"y":"z", "x":1} ] }`))
	z := b.redact(models.ProtocolV1, []byte(`{"instances":[{"x":1,"y":"z"}]}`))
	assert.Equal(t, x.fingerprint, y.fingerprint, "key order and whitespace do not change the fingerprint")
	assert.NotEqual(t, x.fingerprint, z.fingerprint, "another key gives another fingerprint")
}

func TestV2FieldsByTensorColumn(t *testing.T) {
	col := 6
	r := newRedactor(Redaction{Fields: []Field{{Name: "region", Tensor: "input", Index: &col}, {Name: "x0", Tensor: "input", Buckets: []float64{0, 1}}}}, 0)
	out := r.redact(models.ProtocolV2, []byte(`{"inputs":[{"name":"input","shape":[2,7],"datatype":"FP32","data":[1.5,0,0,0,0,0,3, -2,0,0,0,0,0,1]}]}`))
	require.Len(t, out.instances, 2)
	assert.Equal(t, map[string]any{"region": 3.0, "x0": ">=1"}, out.instances[0].inputs)
	assert.Equal(t, map[string]any{"region": 1.0, "x0": "<0"}, out.instances[1].inputs)
	assert.NotEqual(t, out.instances[0].fingerprint, out.instances[1].fingerprint)
}

func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	// A store whose writer is not running: the queue only fills.
	s := newStore(Config{Driver: "sqlite", QueueSize: 3, MaxInstances: 8, MaxOutputValues: 8, AgreementSample: 1}, nil)
	require.NoError(t, s.register(nil))
	done := make(chan struct{})
	go func() {
		for i := range 10 {
			feed(s, exchange(i, "1", "2"))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("OnResult blocked on a full queue")
	}
	assert.Equal(t, 7.0, testutil.ToFloat64(s.m.queueFull))
}

func TestFullDiskDropsAndCounts(t *testing.T) {
	// A 40-page cap stands in for a full disk: SQLite answers SQLITE_FULL.
	s := openSQLiteStore(t, Config{SQLiteMaxPages: 40, AgreementSample: 1, BatchSize: 50,
		Redaction: Redaction{StoreRaw: true}}, nil)
	for i := range 2000 {
		ex := exchange(i, "1", "2")
		ex.Request = append([]byte(`{"instances":[{"pad":"`+string(bytes.Repeat([]byte{'x'}, 2000))+`","i":`), []byte(itoa(i)+`}]}`)...)
		feed(s, ex)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_ = s.Flush(ctx)
	full := testutil.ToFloat64(s.m.diskFull)
	assert.Positive(t, full, "writes past the cap are counted as disk_full")
	assert.Equal(t, 2000.0, full+testutil.ToFloat64(s.m.written)+testutil.ToFloat64(s.m.queueFull))
	assert.Zero(t, testutil.ToFloat64(s.m.dbErr))
}

func TestRetentionByAgeAndSize(t *testing.T) {
	now := t0.Add(100 * time.Second)
	s := openSQLiteStore(t, Config{AgreementSample: 1, MaxAge: 50 * time.Second, Now: func() time.Time { return now },
		Redaction: Redaction{StoreRaw: true}}, nil)
	for i := range 100 {
		ex := exchange(i, "1", "2")
		ex.Request = append(bytes.Repeat([]byte{' '}, 3000), ex.Request...) // 3 KB raw body a record
		feed(s, ex)
	}
	require.Len(t, all(t, s, Filter{}), 100)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, s.Prune(ctx))
	recs := all(t, s, Filter{})
	require.Len(t, recs, 50, "records older than 50s before now are gone")
	assert.Equal(t, t0.Add(50*time.Second), recs[0].Time)
	assert.Equal(t, 50.0, testutil.ToFloat64(s.m.prunedAge))

	// By size: keep the newest records under a byte budget.
	used, err := s.b.(*sqlBackend).d.usedBytes(ctx, s.b.(*sqlBackend).db)
	require.NoError(t, err)
	s.cfg.MaxAge = 0
	s.cfg.MaxBytes = used / 2
	require.NoError(t, s.Prune(ctx))
	recs = all(t, s, Filter{})
	assert.Less(t, len(recs), 50)
	assert.Positive(t, len(recs))
	assert.Equal(t, "req-0099", recs[len(recs)-1].RequestID, "the newest records survive")
	after, err := s.b.(*sqlBackend).d.usedBytes(ctx, s.b.(*sqlBackend).db)
	require.NoError(t, err)
	assert.LessOrEqual(t, after, used/2)
}

func TestWriterRunsRetentionOnItsOwn(t *testing.T) {
	now := t0.Add(time.Hour) // every record is an hour old
	s := openSQLiteStore(t, Config{AgreementSample: 1, MaxAge: time.Minute, RetentionInterval: 20 * time.Millisecond,
		Now: func() time.Time { return now }}, nil)
	for i := range 10 {
		feed(s, exchange(i, "1", "2"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, s.Flush(ctx))
	require.Eventually(t, func() bool { return testutil.ToFloat64(s.m.prunedAge) == 10 }, 20*time.Second, 20*time.Millisecond)
	assert.Empty(t, all(t, s, Filter{}))
}

func TestAllowListedHeadersBecomeSlicesAndCredentialsNever(t *testing.T) {
	dir := t.TempDir()
	s := openSQLiteStore(t, Config{SQLitePath: filepath.Join(dir, "diffs.db"), AgreementSample: 1,
		Redaction: Redaction{FingerprintKey: []byte("k"), Fields: []Field{{Name: "region"}}, Headers: []string{"x-tenant"}}}, nil)
	for i := range 10 {
		ex := exchange(i, "1", "2")
		ex.Header = map[string][]string{
			"X-Tenant":      {"acme"},
			"X-Other":       {"NOT-LISTED-HEADER"},
			"Authorization": {"Bearer SECRET-TOKEN"},
		}
		feed(s, ex)
	}
	recs := all(t, s, Filter{})
	require.Len(t, recs, 10)
	assert.Equal(t, map[string]any{"region": "north", "x-tenant": "acme"}, recs[0].Inputs)
	assert.Equal(t, "acme", recs[0].InstanceDiffs[0].Inputs["x-tenant"], "every instance carries the request's headers, so slices see them")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Close(ctx))
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		require.NoError(t, err)
		assert.False(t, bytes.Contains(b, []byte("SECRET-TOKEN")), "%s holds a credential", f.Name())
		assert.False(t, bytes.Contains(b, []byte("NOT-LISTED-HEADER")), "%s holds a header not on the allow-list", f.Name())
	}
}

func TestCredentialHeadersCannotBeAllowListed(t *testing.T) {
	for _, h := range []string{"Authorization", "cookie", " Proxy-Authorization "} {
		err := (&Redaction{Headers: []string{h}}).Validate()
		require.Error(t, err, h)
		assert.Contains(t, err.Error(), "credentials are never stored")
	}
	err := (&Redaction{Fields: []Field{{Name: "x-tenant"}}, Headers: []string{"X-Tenant"}}).Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "inputs.headers[0]")
}

func TestFingerprintsWithoutAKeyAreNotRecomputable(t *testing.T) {
	body := []byte(`{"instances":[{"ssn":"123-45-6789"}]}`)
	a := newRedactor(Redaction{}, 0).redact(models.ProtocolV1, body)
	b := newRedactor(Redaction{}, 0).redact(models.ProtocolV1, body)
	assert.NotEqual(t, a.fingerprint, b.fingerprint, "each process draws its own random key")
	open := hmac.New(sha256.New, nil)
	c, _ := json.Marshal([]any{map[string]any{"ssn": "123-45-6789"}})
	open.Write(c)
	assert.NotEqual(t, hex.EncodeToString(open.Sum(nil)), a.fingerprint, "never the public empty key")
}

func TestMalformedV2ShapeDoesNotPanic(t *testing.T) {
	r := newRedactor(Redaction{Fields: []Field{{Name: "x"}}}, 0)
	for _, shape := range []string{`["a"]`, `[null]`, `[{}]`, `[-3]`} {
		body := []byte(`{"inputs":[{"name":"x","shape":` + shape + `,"datatype":"FP32","data":[1,2]}]}`)
		assert.NotPanics(t, func() { r.redact(models.ProtocolV2, body) }, shape)
	}
}

func TestRedactionStopsAtTheInstancesKept(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"instances":[`)
	for i := range 500 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"region":"north"}`)
	}
	b.WriteString(`]}`)
	r := newRedactor(Redaction{Fields: []Field{{Name: "region"}}}, 64)
	red := r.redact(models.ProtocolV1, []byte(b.String()))
	assert.Len(t, red.instances, 64, "no work on instances the store would drop")
	assert.NotEmpty(t, red.fingerprint, "the request fingerprint still covers the whole batch")
	v2 := r.redact(models.ProtocolV2, []byte(`{"inputs":[{"name":"region","shape":[100,1],"datatype":"BYTES","data":[`+strings.Repeat(`"n",`, 99)+`"n"]}]}`))
	assert.Len(t, v2.instances, 64)
}
