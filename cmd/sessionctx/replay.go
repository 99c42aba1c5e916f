package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sessionctx/sessionctx/consumer"
	"github.com/sessionctx/sessionctx/contexts"
)

type replayFlags struct {
	fromSeq  uint64
	fromTime string
	tenant   string
	dryRun   bool
	rebuild  bool
	resume   bool
	batch    int
	parallel int
}

func replayCommand(cfg *config, stdout, stderr io.Writer) *cobra.Command {
	var f replayFlags
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Apply the stream's events again, to rebuild or repair the contexts",
		Long: "Applies the event stream's events again through the worker's code path, up to the last event\n" +
			"the stream holds when the replay starts. By default it starts at the stream's first event (as\n" +
			"far back as any live session can reach) and repairs the live Redis: applying an event twice\n" +
			"changes nothing, so only what is missing or wrong is written.\n\n" +
			"--rebuild fills an empty Redis (REDIS_URL / --redis-url) and refuses one that holds contexts.\n" +
			"--dry-run reports what would change, writing nothing. Ctrl-C stops after the batch in hand;\n" +
			"--resume continues from there (the checkpoint is kept in the target Redis).",
		Example: "  sessionctx replay --dry-run\n" +
			"  sessionctx replay --tenant acme --from-time 2026-12-01T00:00:00Z\n" +
			"  REDIS_URL=redis://new-redis:6379/0 sessionctx replay --rebuild",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return replay(cmd.Context(), cfg, f, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	fl.Uint64Var(&f.fromSeq, "from-seq", 0, "start at this stream sequence")
	fl.StringVar(&f.fromTime, "from-time", "", "start at this time (RFC 3339)")
	fl.StringVar(&f.tenant, "tenant", "", "replay only this tenant's events")
	fl.BoolVar(&f.dryRun, "dry-run", false, "report what would change; write nothing")
	fl.BoolVar(&f.rebuild, "rebuild", false, "fill an empty Redis; refuse one that holds contexts")
	fl.BoolVar(&f.resume, "resume", false, "continue an interrupted replay from its checkpoint")
	fl.IntVar(&f.batch, "batch", consumer.ReplayBatchSize, "events read per batch; progress and the checkpoint advance by batches")
	fl.IntVar(&f.parallel, "concurrency", consumer.ReplayConcurrency, "parts of a batch applied at once (a few pipelined round trips each)")
	return cmd
}

func replay(ctx context.Context, cfg *config, f replayFlags, stdout, stderr io.Writer) error {
	var fromTime time.Time
	if f.fromTime != "" {
		var err error
		if fromTime, err = time.Parse(time.RFC3339Nano, f.fromTime); err != nil {
			return fmt.Errorf("--from-time: %q is not RFC 3339", f.fromTime)
		}
	}
	if n := btoi(f.fromSeq > 0) + btoi(!fromTime.IsZero()) + btoi(f.resume); n > 1 {
		return errors.New("--from-seq, --from-time and --resume exclude each other")
	}
	log := cfg.logger(stderr)
	svc, err := connect(ctx, cfg, log, false)
	if err != nil {
		return err
	}
	defer svc.Close()

	checkpoint := cfg.KeyPrefix + "replay:" + svc.streams.Stream
	if f.tenant != "" {
		checkpoint += ":" + f.tenant
	}
	if f.resume {
		seq, err := svc.rdb.Get(ctx, checkpoint).Uint64()
		if err != nil {
			return fmt.Errorf("--resume: no checkpoint %s in the target Redis: %w", checkpoint, err)
		}
		f.fromSeq = seq
	}
	if f.rebuild {
		if found, err := anyKey(ctx, svc.rdb, cfg.KeyPrefix+"s:*"); err != nil {
			return err
		} else if found != "" && !f.resume {
			return fmt.Errorf("--rebuild: the target Redis already holds contexts (%s); point REDIS_URL at an empty one, or repair without --rebuild", found)
		}
	}
	store := svc.store
	if f.dryRun {
		store = contexts.NewStore(svc.rdb, contexts.Options{Prefix: cfg.KeyPrefix, Retention: cfg.Retention, DryRun: true})
	}

	progress := newProgress(stderr, log)
	sum, err := consumer.Replay(ctx, consumer.ReplayConfig{
		Config: consumer.Config{JS: svc.js, Streams: svc.streams, Store: store, Tenants: svc.tenants,
			Logger: log, BatchSize: f.batch, Concurrency: f.parallel},
		Tenant: f.tenant, FromSeq: f.fromSeq, FromTime: fromTime,
		Progress: func(p consumer.ReplayProgress) {
			progress.update(p)
			if !f.dryRun {
				if err := svc.rdb.Set(context.WithoutCancel(ctx), checkpoint, p.NextSeq, 7*24*time.Hour).Err(); err != nil {
					log.Warn("replay: checkpoint not saved", "err", err)
				}
			}
		},
	})
	progress.finish()
	if err != nil {
		return err
	}
	verb := "applied"
	if f.dryRun {
		verb = "would change state"
	}
	fmt.Fprintf(stdout, "replay of %s%s: %d events read in %s (%.0f/s)\n", svc.streams.Stream, tenantNote(f.tenant), sum.Read,
		sum.Elapsed.Round(time.Millisecond), float64(sum.Read)/max(sum.Elapsed.Seconds(), 1e-9))
	fmt.Fprintf(stdout, "  %-24s %d\n  %-24s %d\n  %-24s %d\n  %-24s %d\n",
		verb, sum.Applied, "unchanged (dup or stale)", sum.Unchanged, "dead-lettered (invalid)", sum.Invalid, "sessions touched", sum.Sessions)
	if sum.Interrupted {
		fmt.Fprintf(stdout, "interrupted: every event before sequence %d is applied; continue with\n  sessionctx replay --resume%s\n",
			sum.NextSeq, tenantFlag(f.tenant))
		return errors.New("replay interrupted")
	}
	if !f.dryRun {
		svc.rdb.Del(context.WithoutCancel(ctx), checkpoint)
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func tenantNote(t string) string {
	if t == "" {
		return ""
	}
	return " (tenant " + t + ")"
}

func tenantFlag(t string) string {
	if t == "" {
		return ""
	}
	return " --tenant " + t
}

// anyKey returns one key matching pattern, or "". On a cluster it asks
// every primary.
func anyKey(ctx context.Context, rdb redis.UniversalClient, pattern string) (string, error) {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		found := ""
		err := cc.ForEachMaster(ctx, func(ctx context.Context, primary *redis.Client) error {
			k, err := anyKey(ctx, primary, pattern)
			mu.Lock()
			defer mu.Unlock()
			found = cmp.Or(found, k)
			return err
		})
		return found, err
	}
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return "", fmt.Errorf("scan target Redis: %w", err)
		}
		if len(keys) > 0 {
			return keys[0], nil
		}
		if cursor = next; cursor == 0 {
			return "", nil
		}
	}
}

// progress shows a replay's progress: a bar on a terminal, a log line every
// five seconds otherwise, both with rate and ETA.
type progress struct {
	bar     *progressbar.ProgressBar
	log     *slog.Logger
	lastLog time.Time
}

func newProgress(w io.Writer, log *slog.Logger) *progress {
	p := &progress{log: log, lastLog: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("replay"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("events"),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionFullWidth())
	}
	return p
}

func (p *progress) update(r consumer.ReplayProgress) {
	if p.bar != nil {
		if p.bar.GetMax64() != int64(r.Total) {
			p.bar.ChangeMax64(int64(r.Total))
		}
		_ = p.bar.Set64(int64(r.Done))
		return
	}
	if time.Since(p.lastLog) < 5*time.Second && r.Done < r.Total {
		return
	}
	rate := float64(r.Done) / max(r.Elapsed.Seconds(), 1e-9)
	eta := time.Duration(0)
	if rate > 0 && r.Total > r.Done {
		eta = time.Duration(float64(r.Total-r.Done)/rate) * time.Second
	}
	p.log.Info("replay progress", "done", r.Done, "total", r.Total, "rate_per_s", strconv.FormatFloat(rate, 'f', 0, 64),
		"eta", eta.Round(time.Second), "next_seq", r.NextSeq)
	p.lastLog = time.Now()
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		_ = p.bar.Exit()
	}
}
