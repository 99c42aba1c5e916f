package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	rpprof "runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/sessionctx/sessionctx/api"
	"github.com/sessionctx/sessionctx/consumer"
	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/internal/auth"
)

// childArg is the hidden first argument of a re-executed child:
// bench -child <kind> <json config>.
const childArg = "-child"

// serverConfig configures the serving children.
type serverConfig struct {
	RedisURL      string `json:"redisURL"`
	NATSURL       string `json:"natsURL,omitempty"`
	KeyPrefix     string `json:"keyPrefix"`
	Stream        string `json:"stream,omitempty"`
	SubjectPrefix string `json:"subjectPrefix,omitempty"`
	Concurrency   int    `json:"concurrency,omitempty"`
	// RawStore has the worker apply events with rawStore, the second ingest
	// baseline, instead of the store.
	RawStore bool   `json:"rawStore,omitempty"`
	Secret   string `json:"secret,omitempty"`
}

func childMain(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "bench child: want <kind> <config>")
		return 2
	}
	kind, raw := args[0], []byte(args[1])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch kind {
	case "loadgen":
		var cfg loadConfig
		if err = json.Unmarshal(raw, &cfg); err == nil {
			err = loadgenMain(ctx, cfg)
		}
	case "worker", "api", "raw":
		var cfg serverConfig
		if err = json.Unmarshal(raw, &cfg); err == nil {
			// The parent closes stdin to stop a serving child; its death
			// closes it too, so no child outlives a run.
			ctx, cancel := context.WithCancel(ctx)
			go func() {
				_, _ = io.Copy(io.Discard, os.Stdin)
				cancel()
			}()
			err = serveChild(ctx, kind, cfg)
		}
	default:
		err = fmt.Errorf("unknown child kind %q", kind)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s child: %v\n", kind, err)
		return 1
	}
	return 0
}

// serveChild runs the worker, the API or the raw handler until ctx ends,
// with a debug listener for stats and CPU profiles.
func serveChild(ctx context.Context, kind string, cfg serverConfig) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(ropts) // as cmd/sessionctx does: the client's defaults
	defer rdb.Close()
	store := contexts.NewStore(rdb, contexts.Options{Prefix: cfg.KeyPrefix})

	dbg, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	prof := &cpuProfiler{}
	defer prof.stop()
	dsrv := &http.Server{Handler: debugMux(prof), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = dsrv.Serve(dbg) }()
	defer dsrv.Close()
	ready := childReady{Debug: dbg.Addr().String(), PID: os.Getpid()}

	switch kind {
	case "worker":
		nc, err := nats.Connect(cfg.NATSURL, nats.Name("sessionctx-bench-worker"))
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		var applier consumer.Applier = store
		if cfg.RawStore {
			applier = rawStore{rdb: rdb, prefix: cfg.KeyPrefix}
		}
		w := consumer.New(consumer.Config{
			JS: js, Streams: consumer.Streams{Stream: cfg.Stream, SubjectPrefix: cfg.SubjectPrefix},
			Store: applier, Tenants: contexts.DefaultTenants(), Logger: log, Concurrency: cfg.Concurrency,
			Metrics: consumer.NewMetrics(prometheus.NewRegistry()),
		})
		if err := printReady(ready); err != nil {
			return err
		}
		return w.Run(ctx)
	case "api", "raw":
		var h http.Handler
		if kind == "api" {
			v, err := auth.NewVerifier(ctx, auth.Config{Secret: []byte(cfg.Secret)})
			if err != nil {
				return err
			}
			h = api.New(api.Config{Store: store, Tenants: contexts.DefaultTenants(), Verifier: v, Logger: log})
		} else {
			h = rawHandler(rdb, cfg.KeyPrefix)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		errs := make(chan error, 1)
		go func() { errs <- srv.Serve(ln) }()
		ready.Addr = ln.Addr().String()
		if err := printReady(ready); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case err := <-errs:
			return err
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
	return fmt.Errorf("unknown server kind %q", kind)
}

func printReady(r childReady) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(os.Stdout, "%s\n", raw)
	return err
}

// rawHandler is the raw limit of the API: one Redis command per request, no
// authentication, no JSON. GET /raw/{sid} answers the session hash's fields
// and values; POST /raw/{sid}?key=k stores the body as attribute k.
func rawHandler(rdb *redis.Client, prefix string) http.Handler {
	key := func(sid string) string { return prefix + "s:{" + tenant + ":" + sid + "}" }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /raw/{sid}", func(w http.ResponseWriter, r *http.Request) {
		m, err := rdb.HGetAll(r.Context(), key(r.PathValue("sid"))).Result()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if len(m) == 0 {
			http.NotFound(w, r)
			return
		}
		buf := make([]byte, 0, 512)
		for k, v := range m {
			buf = append(append(append(append(buf, k...), '='), v...), '\n')
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(buf)
	})
	mux.HandleFunc("POST /raw/{sid}", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := rdb.HSet(r.Context(), key(r.PathValue("sid")), "a:"+r.URL.Query().Get("key"), body).Err(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	return mux
}

// cpuProfiler runs at most one CPU profile at a time.
type cpuProfiler struct {
	mu sync.Mutex
	f  *os.File
}

func (p *cpuProfiler) start(path string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f != nil {
		return errors.New("a CPU profile is already running")
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rpprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return err
	}
	p.f = f
	return nil
}

func (p *cpuProfiler) stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f == nil {
		return nil
	}
	rpprof.StopCPUProfile()
	err := p.f.Close()
	p.f = nil
	return err
}

func debugMux(prof *cpuProfiler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/bench/stats", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") != "" {
			runtime.GC()
			debug.FreeOSMemory()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s := childStats{RSS: vmRSS(), HeapLive: ms.HeapAlloc, HeapTotal: ms.HeapSys, Goroutines: runtime.NumGoroutine()}
		_ = json.NewEncoder(w).Encode(s)
	})
	mux.HandleFunc("/bench/cpu/start", func(w http.ResponseWriter, r *http.Request) {
		if err := prof.start(r.URL.Query().Get("path")); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
		}
	})
	mux.HandleFunc("/bench/cpu/stop", func(w http.ResponseWriter, _ *http.Request) {
		if err := prof.stop(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	return mux
}

// vmRSS is this process's resident set size in bytes (VmRSS of
// /proc/self/status), or -1 where there is no such file.
func vmRSS() int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb << 10
				}
			}
		}
	}
	return -1
}
