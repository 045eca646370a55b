package commands

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

func init() {
	// --version only: -v could be taken for "verbose".
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version, revision and Go version"}
	cli.VersionPrinter = func(c *cli.Context) { writeVersion(c.App.Writer) }
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, the source revision it was built from and the Go version",
		Action: func(c *cli.Context) error {
			return writeVersion(c.App.Writer)
		},
	}
}

// moduleVersion is the main module's version from the build info:
// "(devel)" for a build from a source tree.
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(unknown)"
}

// vcsRevision is the commit the binary was built from, "" if unknown.
func vcsRevision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}

// writeVersion writes the module version, the VCS revision (with its
// commit time, and "modified" when the tree had uncommitted changes) and
// the Go version the binary was built with, from runtime/debug.
func writeVersion(w io.Writer) error {
	revision, at, modified := "unknown (built without version control information)", "", false
	goVersion := runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if at != "" {
		revision += " (" + at + ")"
	}
	if modified {
		revision += ", with uncommitted changes"
	}
	_, err := fmt.Fprintf(w, "librecord %s\nrevision %s\nbuilt with %s %s/%s\n", moduleVersion(), revision, goVersion, runtime.GOOS, runtime.GOARCH)
	return err
}
