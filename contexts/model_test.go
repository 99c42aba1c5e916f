package contexts_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/histories"
	"github.com/sessionctx/sessionctx/internal/modeltest"
)

// TestStoreMatchesModelInAnyOrder applies random histories in shuffled order
// with duplicates, from two goroutines, and compares every session with the
// reference model.
func TestStoreMatchesModelInAnyOrder(t *testing.T) {
	s := modeltest.Seed(t)
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
	n := modeltest.Compare(t, store, tenant, evs)
	t.Logf("%d events (%d deliveries) over %d sessions match the model", len(evs), len(deliveries), n)
}
