package commands

import (
	"reflect"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func testApp() *cli.App {
	return &cli.App{
		Flags: globalFlags(),
		Commands: []*cli.Command{{
			Name: "user",
			Subcommands: []*cli.Command{{
				Name: "add",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "salon"},
					&cli.BoolFlag{Name: "password-stdin"},
				},
			}},
		}},
	}
}

func TestNormalizeArgs(t *testing.T) {
	want := "librecord --db x.db user add --salon general --salon dev --password-stdin bob"
	for name, in := range map[string]string{
		"FlagsFirst":   "librecord --db x.db user add --salon general --salon dev --password-stdin bob",
		"FlagsAfter":   "librecord --db x.db user add bob --salon general --salon dev --password-stdin",
		"Mixed":        "librecord --db x.db user add --salon general bob --salon dev --password-stdin",
		"GlobalAfter":  "librecord user add bob --salon general --db x.db --salon dev --password-stdin",
		"EqualsValues": "librecord user add bob --salon=general --db=x.db --salon=dev --password-stdin",
	} {
		t.Run(name, func(t *testing.T) {
			got := strings.Join(NormalizeArgs(testApp(), strings.Fields(in)), " ")
			w := want
			if name == "EqualsValues" {
				w = "librecord --db=x.db user add --salon=general --salon=dev --password-stdin bob"
			}
			if got != w {
				t.Errorf("NormalizeArgs(%q)\n got %q\nwant %q", in, got, w)
			}
		})
	}
	t.Run("DoubleDashKeepsPositional", func(t *testing.T) {
		got := NormalizeArgs(testApp(), strings.Fields("librecord user add --salon dev -- -weird"))
		want := strings.Fields("librecord user add --salon dev -- -weird")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %q want %q", got, want)
		}
	})
	t.Run("ParsesAfterReorder", func(t *testing.T) {
		var salons []string
		var stdin bool
		var args []string
		app := testApp()
		app.Commands[0].Subcommands[0].Action = func(c *cli.Context) error {
			salons, stdin, args = c.StringSlice("salon"), c.Bool("password-stdin"), c.Args().Slice()
			return nil
		}
		if err := app.Run(NormalizeArgs(app, strings.Fields("librecord user add bob --salon general --password-stdin"))); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(salons, []string{"general"}) || !stdin || !reflect.DeepEqual(args, []string{"bob"}) {
			t.Errorf("salons %q stdin %v args %q", salons, stdin, args)
		}
	})
}
