package commands

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"librecord/db"
)

func pruneCommand() *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "delete, once, the messages older than their salon's retention (serve also does it by itself)",
		Description: "For a stopped server or cron: serve prunes every --prune-every by itself. Salons\n" +
			"keep everything unless `librecord salon retain SALON 90d` says otherwise. The\n" +
			"messages go with SQLite's secure_delete and the WAL is truncated after.",
		Action: func(c *cli.Context) error {
			return withDB(c, func(d *db.DB) error {
				return Prune(c.Context, d, c.App.Writer, time.Now())
			})
		},
	}
}

// Prune deletes the messages older than their salon's retention as of now,
// truncates the WAL, and reports how many went on w.
func Prune(ctx context.Context, d *db.DB, w io.Writer, now time.Time) error {
	n, err := d.Prune(ctx, now, 0)
	if err != nil {
		return fmt.Errorf("prune (%d messages deleted before the error): %w", n, err)
	}
	if err := d.TruncateWAL(ctx); err != nil {
		return fmt.Errorf("%d messages deleted, but %w", n, err)
	}
	_, err = fmt.Fprintf(w, "deleted %d messages older than their salon's retention\n", n)
	return err
}

// DefaultPruneEvery is how often serve deletes expired messages.
const DefaultPruneEvery = 5 * time.Minute

// pruneHooks let tests move the pruner's clock and see its passes.
type pruneHooks struct {
	now    func() time.Time               // nil: time.Now
	passed func(deleted int64, err error) // nil: nothing
}

// startPruner deletes expired messages now and then every interval, in
// the background, until the returned stop is called (it waits for a pass
// in progress to end). Each pass deletes in small transactions (see
// db.Prune) that let the server's commits through between them. An
// interval of 0 never prunes.
func startPruner(d *db.DB, every time.Duration, log *slog.Logger, hooks pruneHooks) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	if hooks.now == nil {
		hooks.now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			n, err := d.Prune(ctx, hooks.now(), 0)
			if hooks.passed != nil && ctx.Err() == nil {
				hooks.passed(n, err)
			}
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				log.Warn("prune expired messages", "deleted", n, "err", err)
			case n > 0:
				log.Info("pruned expired messages", "deleted", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}
