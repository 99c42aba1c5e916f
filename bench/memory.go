package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionctx/sessionctx/consumer"
	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/auth"
)

func (b *bench) memory(ctx context.Context) error {
	if b.opts.only["replay"] {
		b.sessionctxBin.start(ctx, b) // measures no rate: a good time to build
	}
	if err := b.redisBytes(ctx); err != nil {
		return err
	}
	return b.residentMemory(ctx)
}

// plainHash is the baseline of a context's Redis size: what a reader sees
// (values without their stamps, the metadata, the attributes) in a plain
// hash, without the lifecycle bookkeeping.
func plainHash(h map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range h {
		switch {
		case k == "cid" || k == "site" || k == "cur" || k == "cart" || k == "loc" || k == "lang":
			if _, val, ok := strings.Cut(v, " "); ok {
				out[k] = val
			}
		case k == "v" || k == "ca" || k == "m" || k == "dl" || k == "e" || strings.HasPrefix(k, "a:"):
			out[k] = v
		}
	}
	return out
}

// redisBytes: MEMORY USAGE of a typical anonymous context with 3 small
// attributes, and of a customer context (with the customer's index keys).
func (b *bench) redisBytes(ctx context.Context) error {
	n := 1000
	if b.opts.quick {
		n = 300
	}
	prefix := b.keyPrefix("memr")
	anon, err := b.makeContexts(ctx, prefix, "anon", n, false)
	if err != nil {
		return err
	}
	keys := make([]string, n)
	for i, s := range anon {
		keys[i] = sessionKey(prefix, s.id)
	}
	total, err := memoryUsage(ctx, b.rdb, keys)
	if err != nil {
		return err
	}
	perAnon := float64(total) / float64(n)

	// Baseline: the same contexts as plain hashes of their visible data.
	basePrefix := b.keyPrefix("memr-plain")
	baseKeys := make([]string, n)
	for i, k := range keys {
		h, err := b.rdb.HGetAll(ctx, k).Result()
		if err != nil {
			return err
		}
		baseKeys[i] = basePrefix + k
		if err := b.rdb.HSet(ctx, baseKeys[i], plainHash(h)).Err(); err != nil {
			return err
		}
		if i == 0 {
			logf("anonymous context hash (%d fields, %d bytes in MEMORY USAGE on average): %s", len(h), int(perAnon), describeHash(h))
		}
	}
	baseTotal, err := memoryUsage(ctx, b.rdb, baseKeys)
	if err != nil {
		return err
	}
	if enc, err := b.rdb.ObjectEncoding(ctx, keys[0]).Result(); err == nil {
		logf("encoding of a context hash: %s", enc)
	}

	cust, err := b.makeContexts(ctx, prefix, "cust", n, true)
	if err != nil {
		return err
	}
	var ckeys, sessKeys []string
	for i, s := range cust {
		k := sessionKey(prefix, s.id)
		sessKeys = append(sessKeys, k)
		ckeys = append(ckeys, k)
		ckeys = append(ckeys, customerKeys(prefix, fmt.Sprintf("cust-%s-%d", b.id, i))...)
	}
	ctotal, err := memoryUsage(ctx, b.rdb, ckeys)
	if err != nil {
		return err
	}
	stotal, err := memoryUsage(ctx, b.rdb, sessKeys)
	if err != nil {
		return err
	}
	if exists, _ := b.rdb.Exists(ctx, customerKeys(prefix, fmt.Sprintf("cust-%s-%d", b.id, 0))[0]).Result(); exists != 1 {
		logf("WARNING: the customer index key format changed; the customer figure counts only the session hash")
	}
	cbase := make([]string, n)
	for i, k := range sessKeys {
		h, err := b.rdb.HGetAll(ctx, k).Result()
		if err != nil {
			return err
		}
		cbase[i] = basePrefix + k
		if err := b.rdb.HSet(ctx, cbase[i], plainHash(h)).Err(); err != nil {
			return err
		}
		if i == 0 {
			logf("customer context hash (%d fields): %s", len(h), describeHash(h))
		}
	}
	cbaseTotal, err := memoryUsage(ctx, b.rdb, cbase)
	if err != nil {
		return err
	}
	perCust := float64(ctotal) / float64(n)
	logf("customer context: %.0f bytes, of which the session hash %.0f and the customer's index %.0f",
		perCust, float64(stotal)/float64(n), float64(ctotal-stotal)/float64(n))

	// A value over hash-max-listpack-value (64 bytes by default) turns the
	// whole hash into a hashtable.
	big := anon[0].id
	if err := b.rdb.HSet(ctx, keys[0], "a:big", `"`+strings.Repeat("x", 98)+`"`).Err(); err == nil {
		bigBytes, _ := memoryUsage(ctx, b.rdb, keys[:1])
		enc, _ := b.rdb.ObjectEncoding(ctx, keys[0]).Result()
		logf("with a 4th attribute of 100 bytes, context %s takes %d bytes (encoding %s)", big, bigBytes, enc)
	}

	target, pass := check("<=400", perAnon <= 400)
	b.report.add(figure{Name: "redis_bytes_anonymous_context", Value: perAnon, Unit: "bytes", Baseline: float64(baseTotal) / float64(n),
		baselineText: "plain hash of visible data", target: target, pass: pass})
	b.report.add(figure{Name: "redis_bytes_customer_context", Value: perCust, Unit: "bytes", Baseline: float64(cbaseTotal) / float64(n),
		baselineText: "plain hash of visible data"})
	return nil
}

// describeHash lists a hash's fields with their value sizes.
func describeHash(h map[string]string) string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	var sb strings.Builder
	for _, k := range names {
		fmt.Fprintf(&sb, "%s=%q ", k, h[k])
	}
	return sb.String()
}

// residentMemory: the worker's and the API's resident memory at 25%, 50%
// and 100% of memEvents events of ever new sessions.
func (b *bench) residentMemory(ctx context.Context) error {
	total := b.opts.memEvents
	if b.opts.quick && b.ingested != nil && !b.opts.memEventsSet {
		// Bound the quick run's time: what the worker applies in about 12 s.
		if fit := int(b.ingested.rate*12) / 1000 * 1000; fit < total {
			total = max(fit, 8000)
			logf("quick: the memory figure uses %d events, what the worker's measured %.0f events/s apply in about 12 s (-memory-events overrides)", total, b.ingested.rate)
		}
	}
	streams := consumer.Streams{Stream: b.streamName("mem"), SubjectPrefix: b.subjectPrefix("mem")}.Defaults()
	b.own(streams.Stream, streams.DeadLetterStream())
	cons, err := consumer.Provision(ctx, b.js, streams)
	if err != nil {
		return err
	}
	prefix := b.keyPrefix("mem")
	cfg := serverConfig{
		RedisURL: b.redisURL, NATSURL: b.natsURL, KeyPrefix: prefix, Secret: string(b.secret),
		Stream: streams.Stream, SubjectPrefix: streams.SubjectPrefix, Concurrency: b.opts.concurrency,
	}
	w, err := b.startChild(ctx, "worker", cfg)
	if err != nil {
		return err
	}
	defer w.stop()
	a, err := b.startChild(ctx, "api", cfg)
	if err != nil {
		return err
	}
	defer a.stop()
	burst := 2 * time.Second
	if b.opts.quick {
		burst = 500 * time.Millisecond
	}

	src := newEventSource(2, time.Now().Add(-time.Hour), time.Hour)
	rng := rand.New(rand.NewPCG(3, 3))
	const sampleSize = 5000
	var sample []string
	seen := 0
	published := 0
	var pending []events.Event
	type point struct {
		events           int
		worker, api      childStats
		workerGC, apiGC  childStats
		served, notFound int
	}
	var points []point
	start := time.Now()
	for _, pct := range []int{25, 50, 100} {
		cp := total * pct / 100
		for published < cp {
			if len(pending) == 0 {
				pending = src.next(10_000)
			}
			k := min(len(pending), cp-published)
			batch := pending[:k]
			pending = pending[k:]
			for _, e := range batch {
				if e.Type != events.CartCreated {
					continue
				}
				// Reservoir sample of sessions with a cart.
				if seen++; len(sample) < sampleSize {
					sample = append(sample, e.Data.SessionID)
				} else if j := rng.IntN(seen); j < sampleSize {
					sample[j] = e.Data.SessionID
				}
			}
			enc, err := encodeAll(batch)
			if err != nil {
				return err
			}
			if err := b.publish(ctx, streams.SubjectPrefix, enc); err != nil {
				return err
			}
			published += k
		}
		seq, _, err := b.lastSeq(ctx, streams.Stream)
		if err != nil {
			return err
		}
		if _, err := waitAcked(ctx, cons, seq, b.waitTimeout(total), fmt.Sprintf("worker (memory, %d%%)", pct)); err != nil {
			return err
		}
		p := point{events: published}
		if p.worker, err = w.stats(false); err != nil {
			return err
		}
		if p.workerGC, err = w.stats(true); err != nil {
			return err
		}
		// The API serves a burst of reads over a sample of all sessions so far.
		sessions := make([]session, len(sample))
		for i, sid := range sample {
			tok, err := auth.Mint(b.secret, auth.TokenSpec{Tenant: tenant, SessionID: sid, TTL: time.Hour})
			if err != nil {
				return err
			}
			sessions[i] = session{sid, tok}
		}
		tokens := fmt.Sprintf("%s/mem-tokens-%d.tsv", b.dir, pct)
		if err := writeTokens(tokens, sessions); err != nil {
			return err
		}
		res, err := b.runLoad(ctx, loadConfig{Base: "http://" + a.ready.Addr, Tokens: tokens, Clients: b.opts.clients,
			Duration: burst, Rate: 0, Seed: uint64(pct), AllowNotFound: true})
		if err != nil {
			return fmt.Errorf("API burst: %w", err)
		}
		p.served, p.notFound = res.Statuses["200"], res.Statuses["404"]
		if p.api, err = a.stats(false); err != nil {
			return err
		}
		if p.apiGC, err = a.stats(true); err != nil {
			return err
		}
		points = append(points, p)
		logf("memory at %d%% (%d events, %s): worker RSS %.1f MB (heap after GC %.1f MB, %d goroutines); API RSS %.1f MB (heap after GC %.1f MB) after %d reads (%d 200, %d 404)",
			pct, published, time.Since(start).Round(time.Second), mb(p.worker.RSS), mb(int64(p.workerGC.HeapLive)), p.worker.Goroutines,
			mb(p.api.RSS), mb(int64(p.apiGC.HeapLive)), res.Requests, p.served, p.notFound)
	}
	if n, err := countKeys(ctx, b.rdb, prefix+"s:*"); err == nil {
		logf("memory run: %d events made %d session keys", published, n)
	}
	p25, p50, p100 := points[0], points[1], points[2]
	flat := func(v, base int64) (string, *bool) { return check("<=1.25", float64(v) <= 1.25*float64(base)) }
	target, pass := flat(p100.worker.RSS, p25.worker.RSS)
	b.report.add(figure{Name: "worker_rss", Value: mb(p100.worker.RSS), Unit: "MB", Baseline: mb(p25.worker.RSS),
		baselineText: fmt.Sprintf("at %d events", p25.events), target: target, pass: pass})
	b.report.add(figure{Name: "worker_rss_50pct", Value: mb(p50.worker.RSS), Unit: "MB", Baseline: mb(p25.worker.RSS),
		baselineText: fmt.Sprintf("at %d events", p25.events)})
	target, pass = flat(int64(p100.workerGC.HeapLive), int64(p25.workerGC.HeapLive))
	b.report.add(figure{Name: "worker_heap_after_gc", Value: mb(int64(p100.workerGC.HeapLive)), Unit: "MB", Baseline: mb(int64(p25.workerGC.HeapLive)),
		baselineText: "at 25%", target: target, pass: pass})
	target, pass = flat(p100.api.RSS, p25.api.RSS)
	b.report.add(figure{Name: "api_rss", Value: mb(p100.api.RSS), Unit: "MB", Baseline: mb(p25.api.RSS),
		baselineText: fmt.Sprintf("at %d events", p25.events), target: target, pass: pass})
	b.report.add(figure{Name: "api_rss_50pct", Value: mb(p50.api.RSS), Unit: "MB", Baseline: mb(p25.api.RSS),
		baselineText: fmt.Sprintf("at %d events", p25.events)})
	return nil
}

// countKeys counts the keys matching pattern.
func countKeys(ctx context.Context, rdb *redis.Client, pattern string) (int, error) {
	return scanKeys(ctx, rdb, pattern, func([]string) error { return nil })
}
