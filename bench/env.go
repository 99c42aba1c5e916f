package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// tenant is the tenant every benchmark session belongs to.
const tenant = "bench"

// bench holds one run's connections and what it must remove at the end.
type bench struct {
	opts     options
	id       string
	redisURL string
	natsURL  string
	rdb      *redis.Client
	nc       *nats.Conn
	js       jetstream.JetStream
	self     string
	dir      string // temporary files: tokens, child logs
	report   *report
	secret   []byte

	mu       sync.Mutex
	streams  []string
	children []*child

	ingested      *ingestResult // for the replay figure
	sessionctxBin binaryBuild
}

func newBench(ctx context.Context, o options) (_ *bench, err error) {
	b := &bench{opts: o, report: &report{}}
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	b.id = hex.EncodeToString(rb[:])
	b.secret = []byte("bench-secret-" + b.id)
	defer func() {
		if err != nil {
			b.cleanup()
		}
	}()
	b.redisURL = envOr("REDIS_URL", "redis://127.0.0.1:6379")
	b.natsURL = envOr("NATS_URL", "nats://127.0.0.1:4222")
	if err := loopbackOnly("REDIS_URL", b.redisURL); err != nil {
		return nil, err
	}
	for _, u := range strings.Split(b.natsURL, ",") {
		if err := loopbackOnly("NATS_URL", strings.TrimSpace(u)); err != nil {
			return nil, err
		}
	}
	if b.self, err = os.Executable(); err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	if b.dir, err = os.MkdirTemp("", "sessionctx-bench-"+b.id+"-"); err != nil {
		return nil, err
	}
	if o.cpuprofile != "" {
		if err := os.MkdirAll(o.cpuprofile, 0o755); err != nil {
			return nil, fmt.Errorf("-cpuprofile: %w", err)
		}
	}
	ropts, err := redis.ParseURL(b.redisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	ropts.PoolSize = 64
	b.rdb = redis.NewClient(ropts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.rdb.Ping(pctx).Err(); err != nil {
		return nil, fmt.Errorf("redis at %s: %w", b.redisURL, err)
	}
	if b.nc, err = nats.Connect(b.natsURL, nats.Name("sessionctx-bench"), nats.Timeout(5*time.Second)); err != nil {
		return nil, fmt.Errorf("nats at %s: %w", b.natsURL, err)
	}
	if b.js, err = jetstream.New(b.nc, jetstream.WithPublishAsyncMaxPending(4096)); err != nil {
		return nil, err
	}
	if _, err := b.js.AccountInfo(pctx); err != nil {
		return nil, fmt.Errorf("jetstream at %s: %w", b.natsURL, err)
	}
	return b, nil
}

// keyPrefix is the Redis key prefix of one part of the run; every key of the
// run starts with "bench:<id>:".
func (b *bench) keyPrefix(part string) string { return "bench:" + b.id + ":" + part + ":" }

// streamName and subjectPrefix name a per-run stream and its subjects.
func (b *bench) streamName(part string) string {
	return "BENCH_" + strings.ToUpper(b.id) + "_" + strings.ToUpper(part)
}
func (b *bench) subjectPrefix(part string) string { return "bench" + b.id + "." + part + "." }

// own records streams to delete at the end.
func (b *bench) own(streams ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.streams = append(b.streams, streams...)
}

// cleanup stops the children and removes the run's streams, keys and files.
// It runs on every exit path, also after SIGINT.
func (b *bench) cleanup() {
	b.mu.Lock()
	children := b.children
	b.children = nil
	streams := b.streams
	b.streams = nil
	b.mu.Unlock()
	for _, c := range children {
		c.stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if b.js != nil {
		for _, s := range streams {
			if err := b.js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				logf("cleanup: delete stream %s: %v", s, err)
			}
		}
	}
	if b.rdb != nil {
		n, err := deleteKeys(ctx, b.rdb, "bench:"+b.id+":*")
		if err != nil {
			logf("cleanup: delete keys: %v", err)
		} else if n > 0 {
			logf("cleanup: deleted %d Redis keys and %d streams", n, len(streams))
		}
		_ = b.rdb.Close()
	}
	if b.nc != nil {
		b.nc.Close()
	}
	if b.dir != "" && !b.opts.keepLogs {
		_ = os.RemoveAll(b.dir)
	} else if b.dir != "" {
		logf("child logs kept in %s", b.dir)
	}
}

// scanKeys calls f with the keys matching pattern, a batch at a time, and
// returns how many there were.
func scanKeys(ctx context.Context, rdb *redis.Client, pattern string, f func(keys []string) error) (int, error) {
	n := 0
	var cursor uint64
	for range 10_000_000 {
		keys, next, err := rdb.Scan(ctx, cursor, pattern, 5000).Result()
		if err != nil {
			return n, err
		}
		if len(keys) > 0 {
			if err := f(keys); err != nil {
				return n, err
			}
			n += len(keys)
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	return n, nil
}

// deleteKeys unlinks the keys matching pattern, in bounded batches.
func deleteKeys(ctx context.Context, rdb *redis.Client, pattern string) (int, error) {
	return scanKeys(ctx, rdb, pattern, func(keys []string) error { return rdb.Unlink(ctx, keys...).Err() })
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// loopbackOnly refuses a server URL whose host is not a loopback address:
// the benchmark sends load, and load goes to this machine only.
func loopbackOnly(name, raw string) error {
	if !strings.Contains(raw, "://") {
		raw = "nats://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: %q is not a loopback address; the benchmark only loads servers on this machine", name, host)
	}
	return nil
}

// child is a re-executed copy of this binary in one of the child modes.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready childReady
	done  chan struct{}
	err   error
	once  sync.Once
}

// childReady is the first line a serving child prints.
type childReady struct {
	Addr  string `json:"addr,omitempty"`
	Debug string `json:"debug"`
	PID   int    `json:"pid"`
}

// startChild starts a serving child (worker, api, raw) and waits until it
// says it is ready. It stops when its stdin closes (also when this process
// dies) or on SIGTERM.
func (b *bench) startChild(ctx context.Context, kind string, cfg any) (*child, error) {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	c := &child{name: kind, done: make(chan struct{})}
	c.cmd = exec.Command(b.self, childArg, kind, string(raw))
	logFile, err := os.Create(fmt.Sprintf("%s/%s-%d.log", b.dir, kind, time.Now().UnixNano()))
	if err != nil {
		return nil, err
	}
	c.cmd.Stderr = logFile
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s child: %w", kind, err)
	}
	b.mu.Lock()
	b.children = append(b.children, c)
	b.mu.Unlock()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
		c.err = c.cmd.Wait()
		_ = logFile.Close()
		close(c.done)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			<-c.done
			return nil, fmt.Errorf("%s child exited before it was ready (%v); its log: %s", kind, c.err, tail(logFile.Name()))
		}
		if err := json.Unmarshal([]byte(line), &c.ready); err != nil {
			c.stop()
			return nil, fmt.Errorf("%s child: bad ready line %q", kind, line)
		}
	case <-time.After(30 * time.Second):
		c.stop()
		return nil, fmt.Errorf("%s child not ready after 30s; its log: %s", kind, tail(logFile.Name()))
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
	return c, nil
}

// stop closes the child's stdin, then signals it, then kills it, each step
// bounded in time.
func (c *child) stop() {
	c.once.Do(func() {
		_ = c.stdin.Close()
		select {
		case <-c.done:
			return
		case <-time.After(15 * time.Second):
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
			return
		case <-time.After(5 * time.Second):
		}
		_ = c.cmd.Process.Kill()
		<-c.done
	})
}

// childStats is what a serving child reports about itself.
type childStats struct {
	RSS        int64  `json:"rss"`
	HeapLive   uint64 `json:"heapLive"`
	HeapTotal  uint64 `json:"heapTotal"`
	Goroutines int    `json:"goroutines"`
}

var debugClient = &http.Client{Timeout: 30 * time.Second}

func (c *child) get(path string, out any) error {
	resp, err := debugClient.Get("http://" + c.ready.Debug + path)
	if err != nil {
		return fmt.Errorf("%s child: %w", c.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s child %s: %s: %s", c.name, path, resp.Status, body)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// stats reads the child's resident memory; gc runs a collection first so
// that the live heap is comparable between samples.
func (c *child) stats(gc bool) (childStats, error) {
	var s childStats
	path := "/bench/stats"
	if gc {
		path += "?gc=1"
	}
	err := c.get(path, &s)
	return s, err
}

// cpuStart and cpuStop bracket a CPU profile written by the child to path.
func (c *child) cpuStart(path string) error {
	return c.get("/bench/cpu/start?path="+url.QueryEscape(path), nil)
}
func (c *child) cpuStop() error { return c.get("/bench/cpu/stop", nil) }

// profile starts a CPU profile named name when -cpuprofile is set, and
// returns the function that stops it.
func (b *bench) profile(c *child, name string) func() {
	if b.opts.cpuprofile == "" {
		return func() {}
	}
	path := fmt.Sprintf("%s/%s.pprof", b.opts.cpuprofile, name)
	if err := c.cpuStart(path); err != nil {
		logf("cpu profile %s: %v", name, err)
		return func() {}
	}
	return func() {
		if err := c.cpuStop(); err != nil {
			logf("cpu profile %s: %v", name, err)
			return
		}
		logf("wrote %s", path)
	}
}

// tail returns the end of a log file, for error messages.
func tail(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return path
	}
	if len(raw) > 2000 {
		raw = raw[len(raw)-2000:]
	}
	return path + ":\n" + string(raw)
}

func numCPU() int { return runtime.NumCPU() }

// machine describes the CPU, for the report.
func machine() string {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOOS + "/" + runtime.GOARCH
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v) + ", " + runtime.Version()
		}
	}
	return runtime.GOOS + "/" + runtime.GOARCH + ", " + runtime.Version()
}
