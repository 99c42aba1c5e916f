package contexts_test

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/histories"
)

// seed returns SESSIONCTX_SEED when set, else a fresh seed; it is logged so a
// failure can be reproduced.
func seed(t *testing.T) uint64 {
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("SESSIONCTX_SEED"); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("SESSIONCTX_SEED: %v", err)
		}
	}
	t.Logf("seed %d (rerun with SESSIONCTX_SEED=%d)", s, s)
	return s
}

// TestStoreMatchesModelInAnyOrder applies random histories in shuffled order
// with duplicates, from two goroutines, and compares every session with the
// reference model.
func TestStoreMatchesModelInAnyOrder(t *testing.T) {
	s := seed(t)
	r := rand.New(rand.NewPCG(s, s>>1))
	now := time.Now()
	evs := histories.Generate(r, histories.Config{Tenant: tenant.Name, Sessions: 300, Customers: 40, Start: now.Add(-3 * time.Hour), Span: 3 * time.Hour})
	deliveries := append([]events.Event{}, evs...)
	for range len(evs) / 5 {
		deliveries = append(deliveries, evs[r.IntN(len(evs))])
	}
	r.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })

	store, _ := newStore(t, now)
	var wg sync.WaitGroup
	for half := range 2 {
		wg.Go(func() {
			for i := half; i < len(deliveries); i += 2 {
				if _, err := store.Apply(context.Background(), tenant, deliveries[i]); err != nil {
					t.Errorf("apply: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	mismatches := 0
	for _, sid := range histories.SessionIDs(evs) {
		got, err := store.Inspect(context.Background(), tenant, sid)
		if err != nil {
			t.Fatal(err)
		}
		if want := contexts.Fold(tenant, sid, evs); got != want {
			mismatches++
			if mismatches <= 5 {
				t.Errorf("session %s:\n store %+v\n model %+v", sid, got, want)
			}
		}
	}
	if mismatches > 0 {
		t.Fatalf("%d of %d sessions differ from the model", mismatches, len(histories.SessionIDs(evs)))
	}
	t.Logf("%d events (%d deliveries) over %d sessions match the model", len(evs), len(deliveries), len(histories.SessionIDs(evs)))
}
