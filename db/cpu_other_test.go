//go:build !unix

package db

import "time"

func processCPU() time.Duration { return 0 }
