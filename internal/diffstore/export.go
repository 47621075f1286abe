package diffstore

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/parquet-go/parquet-go"
)

// ExportRow is one record in the export schema shared by the Parquet,
// JSON Lines and CSV exports (docs/report.md documents every column).
// Columns are only ever added. Times are UTC; latencies milliseconds.
type ExportRow struct {
	ID               int64     `parquet:"id" json:"id"`
	Time             time.Time `parquet:"time,timestamp(microsecond)" json:"time"`
	RequestID        string    `parquet:"request_id" json:"request_id"`
	TraceID          string    `parquet:"trace_id" json:"trace_id"`
	RolloutID        string    `parquet:"rollout_id" json:"rollout_id"`
	RolloutStep      int32     `parquet:"rollout_step" json:"rollout_step"`
	Protocol         string    `parquet:"protocol" json:"protocol"`
	Model            string    `parquet:"model" json:"model"`
	CanaryModel      string    `parquet:"canary_model" json:"canary_model"`
	ModelVersion     string    `parquet:"model_version" json:"model_version"`
	Mode             string    `parquet:"mode" json:"mode"`
	Outcome          string    `parquet:"outcome" json:"outcome"`
	Side             string    `parquet:"side" json:"side"`
	Reason           string    `parquet:"reason" json:"reason"`
	Detail           string    `parquet:"detail" json:"detail"`
	Instances        int32     `parquet:"instances" json:"instances"`
	Agreed           int32     `parquet:"agreed" json:"agreed"`
	Weight           float64   `parquet:"weight" json:"weight"`
	StableStatus     int32     `parquet:"stable_status" json:"stable_status"`
	CanaryStatus     int32     `parquet:"canary_status" json:"canary_status"`
	StableFailure    string    `parquet:"stable_failure" json:"stable_failure"`
	CanaryFailure    string    `parquet:"canary_failure" json:"canary_failure"`
	StableLatencyMs  float64   `parquet:"stable_latency_ms" json:"stable_latency_ms"`
	CanaryLatencyMs  float64   `parquet:"canary_latency_ms" json:"canary_latency_ms"`
	LatencyDeltaMs   *float64  `parquet:"latency_delta_ms,optional" json:"latency_delta_ms"`
	MaxAbsDiff       *float64  `parquet:"max_abs_diff,optional" json:"max_abs_diff"`
	MaxJS            *float64  `parquet:"max_js,optional" json:"max_js"`
	StableLabel      string    `parquet:"stable_label" json:"stable_label"`
	CanaryLabel      string    `parquet:"canary_label" json:"canary_label"`
	StableOutput     string    `parquet:"stable_output" json:"stable_output"`
	CanaryOutput     string    `parquet:"canary_output" json:"canary_output"`
	InstanceDiffs    string    `parquet:"instance_diffs" json:"instance_diffs"`
	InputFingerprint string    `parquet:"input_fingerprint" json:"input_fingerprint"`
	Inputs           string    `parquet:"inputs" json:"inputs"`
	InputRaw         string    `parquet:"input_raw" json:"input_raw"`
}

// ExportColumns is the column order of every format.
var ExportColumns = []string{"id", "time", "request_id", "trace_id", "rollout_id", "rollout_step", "protocol", "model",
	"canary_model", "model_version", "mode", "outcome", "side", "reason", "detail", "instances", "agreed", "weight",
	"stable_status", "canary_status", "stable_failure", "canary_failure", "stable_latency_ms", "canary_latency_ms",
	"latency_delta_ms", "max_abs_diff", "max_js", "stable_label", "canary_label", "stable_output", "canary_output",
	"instance_diffs", "input_fingerprint", "inputs", "input_raw"}

// Formats are the export formats.
var Formats = []string{"parquet", "jsonl", "csv"}

// ContentType returns the HTTP media type of an export format.
func ContentType(format string) string {
	switch format {
	case "parquet":
		return "application/vnd.apache.parquet"
	case "csv":
		return "text/csv; charset=utf-8"
	}
	return "application/x-ndjson"
}

// Row converts a record to the export schema. Pure.
func Row(r *Record) ExportRow {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	row := ExportRow{ID: r.ID, Time: r.Time.UTC(), RequestID: r.RequestID, TraceID: r.TraceID, RolloutID: r.RolloutID,
		RolloutStep: int32(r.RolloutStep), Protocol: r.Protocol, Model: r.Model, CanaryModel: r.CanaryModel,
		ModelVersion: r.ModelVersion, Mode: r.Mode, Outcome: r.Outcome, Side: r.Side, Reason: r.Reason, Detail: r.Detail,
		Instances: int32(r.Instances), Agreed: int32(r.Agreed), Weight: r.Weight, StableStatus: int32(r.StableStatus),
		CanaryStatus: int32(r.CanaryStatus), StableFailure: r.StableFailure, CanaryFailure: r.CanaryFailure,
		StableLatencyMs: ms(r.StableLatency), CanaryLatencyMs: ms(r.CanaryLatency),
		MaxAbsDiff: finite(r.MaxAbsDiff), MaxJS: finite(r.MaxJS), StableLabel: r.StableLabel, CanaryLabel: r.CanaryLabel,
		StableOutput: string(r.StableOutput), CanaryOutput: string(r.CanaryOutput), InputFingerprint: r.InputFingerprint,
		InputRaw: r.InputRaw}
	if r.Paired {
		d := ms(r.LatencyDelta)
		row.LatencyDeltaMs = &d
	}
	if len(r.InstanceDiffs) > 0 {
		b, _ := json.Marshal(r.InstanceDiffs)
		row.InstanceDiffs = string(b)
	}
	if len(r.Inputs) > 0 {
		b, _ := json.Marshal(r.Inputs)
		row.Inputs = string(b)
	}
	return row
}

// Scanner is the read side of a Store (or a Backend).
type Scanner interface {
	Scan(ctx context.Context, f Filter, fn func(*Record) error) error
}

// Export streams the records matching f to w in format (parquet, jsonl
// or csv) and returns how many it wrote. It blocks on src and w; safe for
// concurrent use with other exports and with writes to the store. Memory stays bounded: rows are
// written as they are read (Parquet buffers one row group of at most
// 8192 rows).
func Export(ctx context.Context, src Scanner, f Filter, format string, w io.Writer) (int, error) {
	n := 0
	switch format {
	case "jsonl":
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		err := src.Scan(ctx, f, func(r *Record) error {
			n++
			return enc.Encode(Row(r))
		})
		if err != nil {
			return n, err
		}
		return n, bw.Flush()
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(ExportColumns); err != nil {
			return 0, err
		}
		rec := make([]string, len(ExportColumns))
		err := src.Scan(ctx, f, func(r *Record) error {
			n++
			csvRow(Row(r), rec)
			if n%1024 == 0 {
				cw.Flush()
			}
			return cw.Write(rec)
		})
		if err != nil {
			return n, err
		}
		cw.Flush()
		return n, cw.Error()
	case "parquet":
		pw := parquet.NewGenericWriter[ExportRow](w, parquet.MaxRowsPerRowGroup(8192), parquet.Compression(&parquet.Zstd),
			parquet.CreatedBy("shadowsplit", "diffstore", "1"))
		buf := make([]ExportRow, 0, 512)
		flush := func() error {
			if len(buf) == 0 {
				return nil
			}
			_, err := pw.Write(buf)
			clear(buf)
			buf = buf[:0]
			return err
		}
		err := src.Scan(ctx, f, func(r *Record) error {
			n++
			if buf = append(buf, Row(r)); len(buf) == cap(buf) {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return n, err
		}
		return n, pw.Close()
	}
	return 0, fmt.Errorf("export format %q: must be one of parquet, jsonl, csv", format)
}

func csvRow(r ExportRow, out []string) {
	i32 := func(v int32) string { return strconv.FormatInt(int64(v), 10) }
	f64 := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	opt := func(v *float64) string {
		if v == nil || math.IsNaN(*v) {
			return ""
		}
		return f64(*v)
	}
	copy(out, []string{strconv.FormatInt(r.ID, 10), r.Time.UTC().Format(time.RFC3339Nano), r.RequestID, r.TraceID, r.RolloutID,
		i32(r.RolloutStep), r.Protocol, r.Model, r.CanaryModel, r.ModelVersion, r.Mode, r.Outcome, r.Side, r.Reason, r.Detail,
		i32(r.Instances), i32(r.Agreed), f64(r.Weight), i32(r.StableStatus), i32(r.CanaryStatus), r.StableFailure,
		r.CanaryFailure, f64(r.StableLatencyMs), f64(r.CanaryLatencyMs), opt(r.LatencyDeltaMs), opt(r.MaxAbsDiff),
		opt(r.MaxJS), r.StableLabel, r.CanaryLabel, r.StableOutput, r.CanaryOutput, r.InstanceDiffs, r.InputFingerprint,
		r.Inputs, r.InputRaw})
}
