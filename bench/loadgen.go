package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loadConfig configures one load run of the loadgen child.
type loadConfig struct {
	// Base is the server's base URL, http://127.0.0.1:port.
	Base string `json:"base"`
	// Raw selects the raw handler's paths instead of the API's.
	Raw bool `json:"raw"`
	// Tokens is a file of "sessionId<TAB>token" lines.
	Tokens   string        `json:"tokens"`
	Clients  int           `json:"clients"`
	Duration time.Duration `json:"duration"`
	Warmup   time.Duration `json:"warmup"`
	// Rate is the total request rate; 0 sends as fast as the server answers.
	Rate float64 `json:"rate"`
	// WriteFraction of requests write an attribute.
	WriteFraction float64 `json:"writeFraction"`
	Seed          uint64  `json:"seed"`
	// AllowNotFound counts 404 answers as served (sessions that have ended).
	AllowNotFound bool `json:"allowNotFound"`
}

// loadResult is what a load run measured (after the warmup).
type loadResult struct {
	Requests int64          `json:"requests"`
	Errors   int64          `json:"errors"`
	Statuses map[string]int `json:"statuses"`
	Seconds  float64        `json:"seconds"`
	RPS      float64        `json:"rps"`
	P50      float64        `json:"p50ms"`
	P90      float64        `json:"p90ms"`
	P99      float64        `json:"p99ms"`
	P999     float64        `json:"p999ms"`
	Max      float64        `json:"maxms"`
	// ReadP99 and WriteP99 split a mixed run.
	ReadP99  float64 `json:"readP99ms"`
	WriteP99 float64 `json:"writeP99ms"`
	Error    string  `json:"error,omitempty"`
}

// maxSamples bounds the latencies kept per client.
const maxSamples = 2_000_000

type session struct{ id, token string }

func readTokens(path string) ([]session, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []session
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if id, tok, ok := strings.Cut(sc.Text(), "\t"); ok {
			out = append(out, session{id, tok})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no tokens", path)
	}
	return out, sc.Err()
}

// writeTokens writes the tokens file the loadgen reads.
func writeTokens(path string, ss []session) error {
	var buf bytes.Buffer
	for _, s := range ss {
		buf.WriteString(s.id + "\t" + s.token + "\n")
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}

// loadgenMain runs a load and prints its result as JSON.
func loadgenMain(ctx context.Context, cfg loadConfig) error {
	// Collect garbage rarely: the load generator's own GC work would delay
	// its requests and take CPU from the servers it measures.
	debug.SetGCPercent(800)
	sessions, err := readTokens(cfg.Tokens)
	if err != nil {
		return err
	}
	res := generateLoad(ctx, cfg, sessions)
	return json.NewEncoder(os.Stdout).Encode(res)
}

type sample struct {
	lat   time.Duration
	write bool
}

// generateLoad runs cfg.Clients clients, each with its own keep-alive
// connection, for the warmup plus the duration. With a rate, each client
// sends on a fixed schedule and latency counts from the scheduled time, so
// that a slow answer is not hidden by sending the next request later.
func generateLoad(ctx context.Context, cfg loadConfig, sessions []session) loadResult {
	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	end := measureFrom.Add(cfg.Duration)
	ctx, cancel := context.WithDeadline(ctx, end.Add(15*time.Second))
	defer cancel()

	var mu sync.Mutex
	statuses := map[string]int{}
	var all []sample
	var errs int64
	var firstErr string
	var wg sync.WaitGroup
	for c := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(c)))
			conn := &httpConn{addr: strings.TrimPrefix(cfg.Base, "http://")}
			defer conn.close()
			var buf []byte
			var local []sample
			localStatus := map[string]int{}
			var localErrs int64
			var localFirst string
			var interval time.Duration
			next := start.Add(time.Duration(rng.Int64N(int64(10 * time.Millisecond))))
			if cfg.Rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(cfg.Clients) / cfg.Rate)
				next = start.Add(time.Duration(rng.Int64N(int64(interval))))
			}
			for i := 0; ; i++ {
				sent := time.Now()
				if cfg.Rate > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					sent = next
					next = next.Add(interval)
				}
				if sent.After(end) || ctx.Err() != nil {
					break
				}
				s := sessions[rng.IntN(len(sessions))]
				write := cfg.WriteFraction > 0 && rng.Float64() < cfg.WriteFraction
				buf = request(buf[:0], cfg, s, write, rng)
				status, err := conn.do(buf, 10*time.Second)
				lat := time.Since(sent)
				if sent.Before(measureFrom) {
					continue
				}
				switch {
				case err != nil:
					localErrs++
					if localFirst == "" {
						localFirst = err.Error()
					}
					localStatus["error"]++
				default:
					localStatus[strconv.Itoa(status)]++
					if (status < 200 || status > 299) && !(cfg.AllowNotFound && status == http.StatusNotFound) {
						localErrs++
					}
				}
				if len(local) < maxSamples/cfg.Clients {
					local = append(local, sample{lat, write})
				}
			}
			mu.Lock()
			all = append(all, local...)
			for k, v := range localStatus {
				statuses[k] += v
			}
			errs += localErrs
			if firstErr == "" {
				firstErr = localFirst
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res := loadResult{Statuses: statuses, Errors: errs, Error: firstErr, Seconds: cfg.Duration.Seconds()}
	for _, n := range statuses {
		res.Requests += int64(n)
	}
	res.RPS = float64(res.Requests) / cfg.Duration.Seconds()
	lats := make([]time.Duration, 0, len(all))
	var reads, writes []time.Duration
	for _, s := range all {
		lats = append(lats, s.lat)
		if s.write {
			writes = append(writes, s.lat)
		} else {
			reads = append(reads, s.lat)
		}
	}
	slices.Sort(lats)
	slices.Sort(reads)
	slices.Sort(writes)
	res.P50, res.P90, res.P99, res.P999 = pct(lats, 0.50), pct(lats, 0.90), pct(lats, 0.99), pct(lats, 0.999)
	if len(lats) > 0 {
		res.Max = ms(lats[len(lats)-1])
	}
	if cfg.WriteFraction > 0 {
		res.ReadP99, res.WriteP99 = pct(reads, 0.99), pct(writes, 0.99)
	}
	return res
}

// pct is the q-quantile of sorted latencies, in milliseconds (nearest rank).
func pct(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return ms(sorted[i])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// attributeKeys are the attributes writes replace, so that contexts do not
// grow during a run.
var attributeKeys = []string{"pref1", "pref2", "pref3"}

// request appends the HTTP request of one read or attribute write to dst.
func request(dst []byte, cfg loadConfig, s session, write bool, rng *rand.Rand) []byte {
	host := strings.TrimPrefix(cfg.Base, "http://")
	key := attributeKeys[rng.IntN(len(attributeKeys))]
	value := `"v` + strconv.Itoa(rng.IntN(1000)) + `"`
	switch {
	case cfg.Raw && write:
		return appendRequest(dst, http.MethodPost, host, "/raw/"+s.id+"?key="+key, "", []byte(value))
	case cfg.Raw:
		return appendRequest(dst, http.MethodGet, host, "/raw/"+s.id, "", nil)
	case write:
		body := `{"key":"` + key + `","value":` + value + `}`
		return appendRequest(dst, http.MethodPost, host, "/session-context/"+tenant+"/me/context/attributes", s.token, []byte(body))
	default:
		return appendRequest(dst, http.MethodGet, host, "/session-context/"+tenant+"/me/context", s.token, nil)
	}
}

// runLoad runs a load in a loadgen child and returns its result.
func (b *bench) runLoad(ctx context.Context, cfg loadConfig) (loadResult, error) {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return loadResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Warmup+cfg.Duration+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.self, childArg, "loadgen", string(raw))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		return loadResult{}, fmt.Errorf("loadgen: %w: %s", err, stderr.String())
	}
	var res loadResult
	if err := json.Unmarshal(out, &res); err != nil {
		return loadResult{}, fmt.Errorf("loadgen output %q: %w", out, err)
	}
	if res.Requests == 0 {
		return res, errors.New("loadgen made no requests")
	}
	if float64(res.Errors) > 0.01*float64(res.Requests) {
		return res, fmt.Errorf("%d of %d requests failed (statuses %v, first error %q)", res.Errors, res.Requests, res.Statuses, res.Error)
	}
	return res, nil
}
