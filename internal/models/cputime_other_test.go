//go:build !linux

package models

import "time"

func threadCPU() (time.Duration, bool) { return 0, false }
