package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/auth"
)

// sessionKey is the store's key of a session (contexts.Store keeps it
// private; makeContexts checks that the format still matches).
func sessionKey(prefix, sid string) string { return prefix + "s:{" + tenant + ":" + sid + "}" }

// customerKeys are the store's per-customer keys (session index, logouts).
func customerKeys(prefix, customer string) []string {
	tag := "{" + tenant + ":c:" + customer + "}"
	return []string{prefix + "cs:" + tag, prefix + "cl:" + tag}
}

// typicalAttributes are the 3 small attributes of a typical context; the
// write mix replaces them (loadgen's attributeKeys), so contexts keep their
// size during a run.
var typicalAttributes = map[string]json.RawMessage{
	"pref1": json.RawMessage(`"v123"`), "pref2": json.RawMessage(`"v456"`), "pref3": json.RawMessage(`"v789"`),
}

// makeContexts creates n visible contexts through the store, as the worker
// and the API would: anonymous.login, cart.created, (customer.login when
// customers,) and 3 attributes through an API edit. It returns the sessions
// with shopper tokens.
func (b *bench) makeContexts(ctx context.Context, prefix, part string, n int, customers bool) ([]session, error) {
	store := contexts.NewStore(b.rdb, contexts.Options{Prefix: prefix})
	t, err := contexts.DefaultTenants().Lookup(tenant)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	out := make([]session, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				sid := fmt.Sprintf("%s-%s-%d", part, b.id, i)
				customer := ""
				if customers {
					customer = fmt.Sprintf("cust-%s-%d", b.id, i)
				}
				if err := makeContext(ctx, store, t, now, i, sid, customer); err != nil {
					errs <- err
					return
				}
				tok, err := auth.Mint(b.secret, auth.TokenSpec{Tenant: tenant, SessionID: sid, CustomerID: customer, TTL: 3 * time.Hour})
				if err != nil {
					errs <- err
					return
				}
				out[i] = session{sid, tok}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n > 0 {
		if exists, err := b.rdb.Exists(ctx, sessionKey(prefix, out[0].id)).Result(); err != nil || exists != 1 {
			return nil, fmt.Errorf("the store's session key format changed: %s not found (%v); update sessionKey in bench/api.go", sessionKey(prefix, out[0].id), err)
		}
	}
	return out, nil
}

// makeContext makes one context; event ids are UUIDs, as events.New makes
// them, since they are part of the stored stamps.
func makeContext(ctx context.Context, store *contexts.Store, t contexts.Tenant, now time.Time, i int, sid, customer string) error {
	exp := now.Add(3 * time.Hour)
	evs := []events.Event{
		{ID: uuid.NewString(), Type: events.AnonymousLogin, Tenant: tenant, Source: "bench", Time: now.Add(-2 * time.Minute),
			Data: events.Data{SessionID: sid, SiteCode: "main", Currency: "EUR", ExpiresAt: &exp}},
		{ID: uuid.NewString(), Type: events.CartCreated, Tenant: tenant, Source: "bench", Time: now.Add(-time.Minute),
			Data: events.Data{SessionID: sid, CartID: fmt.Sprintf("%016x%08x", uint64(now.UnixNano()), i)}}, // 24 hex digits, like DESIGN.md's
	}
	if customer != "" {
		evs = append(evs, events.Event{ID: uuid.NewString(), Type: events.CustomerLogin, Tenant: tenant, Source: "bench",
			Time: now.Add(-30 * time.Second), Data: events.Data{SessionID: sid, CustomerID: customer,
				Customer: &events.Profile{PreferredCurrency: "EUR", PreferredLanguage: "de", ShippingCountry: "DE"}}})
	}
	for _, e := range evs {
		if _, err := store.Apply(ctx, t, e); err != nil {
			return err
		}
	}
	_, err := store.Edit(ctx, t, sid, contexts.Edit{Access: contexts.Access{Kind: contexts.AccessService}, SetAttributes: typicalAttributes})
	return err
}

// api: GET /me/context and a 10% attribute-write mix against the raw handler.
func (b *bench) api(ctx context.Context) error {
	prefix := b.keyPrefix("api")
	t := time.Now()
	sessions, err := b.makeContexts(ctx, prefix, "api", b.opts.sessions, false)
	if err != nil {
		return err
	}
	logf("made %d contexts in %s", len(sessions), time.Since(t).Round(time.Millisecond))
	tokens := b.dir + "/api-tokens.tsv"
	if err := writeTokens(tokens, sessions); err != nil {
		return err
	}
	cfg := serverConfig{RedisURL: b.redisURL, KeyPrefix: prefix, Secret: string(b.secret)}
	apiChild, err := b.startChild(ctx, "api", cfg)
	if err != nil {
		return err
	}
	defer apiChild.stop()
	rawChild, err := b.startChild(ctx, "raw", cfg)
	if err != nil {
		return err
	}
	defer rawChild.stop()
	if err := probe(ctx, apiChild.ready.Addr, rawChild.ready.Addr, sessions[0]); err != nil {
		return err
	}

	load := func(name string, round int, c *child, raw bool, rate, writes float64) (loadResult, error) {
		stop := func() {}
		if !raw && round == 1 {
			stop = b.profile(c, name)
		}
		b.waitQuiet(ctx, name)
		win := b.cpuStart(ctx, c)
		res, err := b.runLoad(ctx, loadConfig{
			Base: "http://" + c.ready.Addr, Raw: raw, Tokens: tokens, Clients: b.opts.clients,
			Duration: b.opts.duration, Warmup: b.opts.warmup, Rate: rate, WriteFraction: writes, Seed: uint64(7 + round),
		})
		stop()
		use := win.end(ctx)
		if err != nil {
			return res, fmt.Errorf("%s: %w", name, err)
		}
		logf("%-14s #%d %8.0f req/s  p50 %6.2f ms  p90 %6.2f ms  p99 %6.2f ms  p99.9 %6.2f ms  max %6.1f ms  %v\n\t%s (the loadgen is the rest of the machine)",
			name, round, res.RPS, res.P50, res.P90, res.P99, res.P999, res.Max, res.Statuses, use)
		return res, nil
	}
	// pair loads the API and the raw handler alternately, -rounds times, and
	// keeps the median round of each (by req/s, or by p99 at a fixed rate),
	// so that one round disturbed by other work on the machine does not
	// decide a figure.
	pair := func(name string, rate, writes float64) (apiRes, rawRes loadResult, err error) {
		var as, rs []loadResult
		for round := 1; round <= b.opts.rounds; round++ {
			a, err := load("api-"+name, round, apiChild, false, rate, writes)
			if err != nil {
				return a, a, err
			}
			r, err := load("raw-"+name, round, rawChild, true, rate, writes)
			if err != nil {
				return a, r, err
			}
			as, rs = append(as, a), append(rs, r)
		}
		return median(as, rate > 0), median(rs, rate > 0), nil
	}

	apiRead, rawRead, err := pair("read", 0, 0)
	if err != nil {
		return err
	}
	half := apiRead.RPS / 2
	apiHalf, rawHalf, err := pair("read-half", half, 0)
	if err != nil {
		return err
	}
	apiMix, rawMix, err := pair("mix", 0, 0.1)
	if err != nil {
		return err
	}
	if st, err := apiChild.stats(false); err == nil {
		logf("API after load: RSS %.1f MB, heap %.1f MB, %d goroutines", mb(st.RSS), mb(int64(st.HeapLive)), st.Goroutines)
	}

	target, pass := check(">=0.6", apiRead.RPS >= 0.6*rawRead.RPS)
	b.report.add(figure{Name: "api_read", Value: apiRead.RPS, Unit: "req/s", Baseline: rawRead.RPS, baselineText: "raw HGETALL", target: target, pass: pass})
	b.report.add(figure{Name: "api_read_p50", Value: apiRead.P50, Unit: "ms", Baseline: rawRead.P50, baselineText: "raw"})
	b.report.add(figure{Name: "api_read_p99", Value: apiRead.P99, Unit: "ms", Baseline: rawRead.P99, baselineText: "raw"})
	target, pass = check("<5ms", apiHalf.P99 < 5)
	b.report.add(figure{Name: "api_read_p99_at_half_peak", Value: apiHalf.P99, Unit: "ms", Baseline: rawHalf.P99,
		baselineText: fmt.Sprintf("raw at %.0f req/s", half), target: target, pass: pass})
	target, pass = check(">=0.4", apiMix.RPS >= 0.4*rawMix.RPS)
	b.report.add(figure{Name: "api_mix10w", Value: apiMix.RPS, Unit: "req/s", Baseline: rawMix.RPS, baselineText: "raw HGETALL/HSET", target: target, pass: pass})
	b.report.add(figure{Name: "api_mix10w_p50", Value: apiMix.P50, Unit: "ms", Baseline: rawMix.P50, baselineText: "raw"})
	b.report.add(figure{Name: "api_mix10w_p99", Value: apiMix.P99, Unit: "ms", Baseline: rawMix.P99, baselineText: "raw"})
	b.report.add(figure{Name: "api_mix10w_write_p99", Value: apiMix.WriteP99, Unit: "ms", Baseline: rawMix.WriteP99, baselineText: "raw HSET"})
	return nil
}

// median returns the median result by req/s, or by p99 when byP99.
func median(rs []loadResult, byP99 bool) loadResult {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b loadResult) int {
		if byP99 {
			return cmp.Compare(a.P99, b.P99)
		}
		return cmp.Compare(a.RPS, b.RPS)
	})
	return sorted[len(sorted)/2]
}

// probe checks that both servers answer a session's context before loading
// them, and shows the API's answer.
func probe(ctx context.Context, apiAddr, rawAddr string, s session) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+apiAddr+"/session-context/"+tenant+"/me/context", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /me/context: %s: %s", resp.Status, body)
	}
	logf("API answers %d bytes: %s", len(body), body)
	resp, err = http.Get("http://" + rawAddr + "/raw/" + s.id)
	if err != nil {
		return err
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("raw GET: %s: %s", resp.Status, body)
	}
	logf("raw handler answers %d bytes", len(body))
	return nil
}

// memoryUsage is the total MEMORY USAGE of the keys that exist, in bytes,
// with every value sampled.
func memoryUsage(ctx context.Context, rdb *redis.Client, keys []string) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	var total int64
	for i := 0; i < len(keys); i += 500 {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.IntCmd, 0, 500)
		for _, k := range keys[i:min(i+500, len(keys))] {
			cmds = append(cmds, pipe.MemoryUsage(ctx, k, 0))
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return 0, err
		}
		for _, c := range cmds {
			n, err := c.Result()
			if err != nil && err != redis.Nil {
				return 0, err
			}
			total += n
		}
	}
	return total, nil
}
