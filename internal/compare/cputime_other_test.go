//go:build !linux

package compare

import "time"

func threadCPU() (time.Duration, bool) { return 0, false }
