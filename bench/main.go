// Command bench measures sessionctx against the raw limits of the servers it
// runs on: JetStream consume-and-ack for ingest, a minimal net/http handler
// doing one Redis command for the API, and a plain Redis hash for memory.
//
//	go run ./bench            # everything (several minutes)
//	go run ./bench -quick     # a smaller version that finishes within 60 s
//	go run ./bench -only api -duration 20s -clients 64
//
// It uses REDIS_URL and NATS_URL (default: the local servers), refuses
// anything but loopback addresses, puts every key under a per-run prefix and
// every stream under a per-run name, and removes them at the end (also on
// SIGINT/SIGTERM). The worker, the API, the raw handler and the load
// generator each run in a child process (this binary, re-executed), so that
// CPU profiles and resident memory are those of the process serving.
//
// Each figure is printed as one JSON line on stdout as soon as it is
// measured, and all of them as a table at the end. Progress goes to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	quick       bool
	events      int
	memEvents   int
	duration    time.Duration
	warmup      time.Duration
	clients     int
	rounds      int
	sessions    int
	concurrency int
	only        map[string]bool
	cpuprofile  string
	sessionctx  string
	keepLogs    bool

	memEventsSet bool
}

var phases = []string{"ingest", "api", "memory", "replay"}

func main() {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		os.Exit(childMain(os.Args[2:]))
	}
	os.Exit(run())
}

func parseFlags() (options, error) {
	var o options
	var only string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.BoolVar(&o.quick, "quick", false, "a smaller run that finishes within 60 seconds")
	fs.IntVar(&o.events, "events", 0, "events for the ingest figure (default 200000; quick 20000)")
	fs.IntVar(&o.memEvents, "memory-events", 0, "events for the worker/API memory figure (default 1000000; quick 50000)")
	fs.DurationVar(&o.duration, "duration", 0, "length of each API load run (default 10s; quick 3s)")
	fs.IntVar(&o.clients, "clients", 32, "concurrent API clients, each with a keep-alive connection")
	fs.IntVar(&o.rounds, "rounds", 0, "alternating API/raw rounds per API figure, the median kept (default 3; quick 1)")
	fs.IntVar(&o.sessions, "sessions", 0, "sessions with contexts for the API figures (default 10000; quick 2000)")
	fs.IntVar(&o.concurrency, "concurrency", 0, "worker concurrency (default: the worker's own default)")
	fs.StringVar(&only, "only", "", "comma separated subset of "+strings.Join(phases, ","))
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "directory to write CPU profiles of the worker (ingest) and the API (each load run) into")
	fs.StringVar(&o.sessionctx, "sessionctx", "", "sessionctx binary for the replay figure (default: built from ./cmd/sessionctx)")
	fs.BoolVar(&o.keepLogs, "keep-logs", false, "keep the child processes' logs (their path is printed)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	def := func(p *int, full, quick int) {
		if *p <= 0 {
			*p = full
			if o.quick {
				*p = quick
			}
		}
	}
	o.memEventsSet = o.memEvents > 0
	def(&o.events, 200_000, 20_000)
	def(&o.memEvents, 1_000_000, 50_000)
	def(&o.sessions, 10_000, 2_000)
	def(&o.rounds, 3, 1)
	if o.duration <= 0 {
		o.duration = 10 * time.Second
		if o.quick {
			o.duration = 3 * time.Second
		}
	}
	o.warmup = min(time.Second, o.duration/10)
	if o.clients <= 0 || o.clients > 1024 {
		return o, errors.New("-clients must be 1 to 1024")
	}
	o.only = map[string]bool{}
	for _, p := range strings.Split(only, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !slices.Contains(phases, p) {
			return o, fmt.Errorf("-only: %q is not one of %s", p, strings.Join(phases, ","))
		}
		o.only[p] = true
	}
	if len(o.only) == 0 {
		for _, p := range phases {
			o.only[p] = true
		}
	}
	if o.only["replay"] && !o.only["ingest"] {
		// Replay reads the ingest stream and compares with the live rate.
		o.only["ingest"] = true
		logf("-only replay: running ingest too (replay reads its stream and is compared with its rate)")
	}
	return o, nil
}

func run() int {
	o, err := parseFlags()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	started := time.Now()
	b, err := newBench(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer b.cleanup()
	logf("run %s: redis %s, nats %s, %d cores; %s", b.id, b.redisURL, b.natsURL, numCPU(), machine())

	failed := false
	step := func(name string, f func(context.Context) error) {
		if !o.only[name] || ctx.Err() != nil {
			return
		}
		t := time.Now()
		logf("== %s", name)
		if err := f(ctx); err != nil {
			failed = true
			logf("%s failed: %v", name, err)
			return
		}
		logf("== %s done in %s", name, time.Since(t).Round(100*time.Millisecond))
	}
	step("ingest", b.ingest)
	step("api", b.api)
	step("memory", b.memory)
	step("replay", b.replay)

	b.report.table(os.Stdout)
	if o.cpuprofile != "" {
		logf("CPU profiles in %s (go tool pprof -top <file>)", o.cpuprofile)
	}
	logf("finished in %s", time.Since(started).Round(100*time.Millisecond))
	if ctx.Err() != nil {
		logf("interrupted")
		return 130
	}
	if failed {
		return 1
	}
	return 0
}

// logf writes a progress line to stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}
