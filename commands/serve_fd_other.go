//go:build !unix

package commands

func openFileLimit() (uint64, bool) { return 0, false }
