package contexts_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/histories"
	"github.com/sessionctx/sessionctx/internal/modeltest"
	"github.com/sessionctx/sessionctx/internal/testenv"
)

// TestStoreMatchesModelInAnyOrder applies random histories in shuffled order
// with duplicates, from two goroutines, in batches of random sizes, and
// compares every session with the reference model; once with a customer
// idle limit, once with one session per call of the apply program (as on
// Redis Cluster).
func TestStoreMatchesModelInAnyOrder(t *testing.T) {
	idle := tenant
	idle.CustomerIdleLimit = 45 * time.Minute
	cases := []struct {
		name            string
		tenant          contexts.Tenant
		sessionsPerCall int  // 0: the store's own
		cluster         bool // on a Redis Cluster
	}{
		{"no idle limit", tenant, 0, false},
		{"idle limit 45m", idle, 0, false},
		{"one session per call", tenant, 1, false},
		{"redis cluster", idle, 0, true},
	}
	for _, tc := range cases {
		tn := tc.tenant
		t.Run(tc.name, func(t *testing.T) {
			s := modeltest.Seed(t)
			r := rand.New(rand.NewPCG(s, s>>1))
			now := time.Now()
			evs := histories.Generate(r, histories.Config{Tenant: tn.Name, Sessions: 300, Customers: 40, Start: now.Add(-3 * time.Hour), Span: 3 * time.Hour})
			deliveries := append([]events.Event{}, evs...)
			for range len(evs) / 5 {
				deliveries = append(deliveries, evs[r.IntN(len(evs))])
			}
			r.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })
			var batches [][]contexts.Item
			for rest := deliveries; len(rest) > 0; {
				n := min(1+r.IntN(40), len(rest))
				var b []contexts.Item
				for _, e := range rest[:n] {
					b = append(b, contexts.Item{Tenant: tn, Event: e})
				}
				batches, rest = append(batches, b), rest[n:]
			}

			var store *contexts.Store
			if tc.cluster {
				env := testenv.RedisCluster(t)
				store = contexts.NewStore(env.Client, contexts.Options{Prefix: env.Prefix, Now: func() time.Time { return now }})
			} else {
				store, _ = newStore(t, now)
			}
			if tc.sessionsPerCall > 0 {
				contexts.SetSessionsPerCall(store, tc.sessionsPerCall)
			}
			var wg sync.WaitGroup
			for half := range 2 {
				wg.Go(func() {
					for i := half; i < len(batches); i += 2 {
						_, errs := store.ApplyBatch(context.Background(), batches[i])
						for _, err := range errs {
							if err != nil {
								t.Errorf("apply: %v", err)
								return
							}
						}
					}
				})
			}
			wg.Wait()
			n := modeltest.Compare(t, store, tn, evs)
			t.Logf("%d events (%d deliveries in %d batches) over %d sessions match the model", len(evs), len(deliveries), len(batches), n)
		})
	}
}
