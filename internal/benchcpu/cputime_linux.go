package benchcpu

import (
	"syscall"
	"time"
)

// threadCPU is the calling thread's CPU time. Benchmarks report it next to
// wall time because the 2-core build machine is shared: wall ns/op there
// includes time spent waiting for a core, CPU ns/op does not.
func threadCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
