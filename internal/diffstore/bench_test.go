package diffstore

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shadowsplit/shadowsplit/internal/compare"
)

// BenchmarkOnResult is the cost the store adds on a shadow worker: for a
// kept disagreement (redaction, fingerprint, output decoding, enqueue) and
// for an agreement the sample rate skips.
func BenchmarkOnResult(b *testing.B) {
	idx := 6
	for _, bc := range []struct {
		name           string
		stable, canary string
		rate           float64
	}{{"disagreement", "1", "2", 1}, {"agreement_sampled_out", "1", "1", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			s := newStore(Config{Driver: "sqlite", QueueSize: 1, MaxInstances: 64, MaxOutputValues: 64, AgreementSample: bc.rate,
				Redaction: Redaction{FingerprintKey: []byte("k"), Fields: []Field{{Name: "age", Buckets: []float64{18, 65}}, {Name: "x", Index: &idx}}}}, nil)
			if err := s.register(nil); err != nil {
				b.Fatal(err)
			}
			ex := exchange(1, bc.stable, bc.canary)
			res := compare.Compare(ex, compare.Options{Mode: compare.ModeClassification})
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				s.OnResult(ex, res)
				select { // keep the queue empty without a writer
				case <-s.q:
				default:
				}
			}
			_ = testutil.ToFloat64(s.m.queueFull)
		})
	}
}
