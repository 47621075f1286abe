// Package benchcpu lets benchmarks report CPU time next to wall time. The
// development and CI machines have 2 shared cores: wall ns/op there
// includes time spent waiting for a core, the thread's CPU ns/op does not.
package benchcpu

import (
	"runtime"
	"testing"
)

// PerOp reports the thread CPU time per iteration as "cpu-ns/op". Call it
// with defer at the top of a benchmark that uses b.Loop:
//
//	defer benchcpu.PerOp(b)()
func PerOp(b *testing.B) func() {
	runtime.LockOSThread()
	start, ok := threadCPU()
	return func() {
		end, ok2 := threadCPU()
		runtime.UnlockOSThread()
		if ok && ok2 && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}
