package consumer_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionctx/sessionctx/consumer"
	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/testenv"
)

// slowStore takes its time over every batch, so that shutdown finds work in
// flight.
type slowStore struct {
	store   *contexts.Store
	applied atomic.Int64
}

func (s *slowStore) ApplyBatch(ctx context.Context, items []contexts.Item) ([]contexts.Result, []error) {
	time.Sleep(100 * time.Millisecond)
	res, errs := s.store.ApplyBatch(ctx, items)
	s.applied.Add(int64(len(items)))
	return res, errs
}

// TestShutdownFinishesInFlightWork cancels a busy worker: it stops pulling,
// applies and acknowledges what it holds, and returns.
func TestShutdownFinishesInFlightWork(t *testing.T) {
	n := testenv.NATS(t)
	rg := newRig(t, n)
	var evs []events.Event
	for i := range 2000 {
		evs = append(evs, events.New(events.CartCreated, "acme", "test", events.Data{SessionID: fmt.Sprint("s", i), CartID: "c"}))
	}
	rg.publishAll(t, evs)
	slow := &slowStore{store: rg.store}
	w := consumer.New(consumer.Config{JS: n.JS, Streams: rg.streams, Store: slow, Tenants: tenants, Concurrency: 2, BatchSize: 50})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for slow.applied.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	applied := slow.applied.Load()
	if applied == 0 || applied >= int64(len(evs)) {
		t.Fatalf("applied %d of %d: the test did not stop the worker mid-stream", applied, len(evs))
	}
	if err := n.Conn.Flush(); err != nil {
		t.Fatal(err)
	}
	waitAcked := time.Now().Add(5 * time.Second)
	for {
		info, err := n.JS.Consumer(context.Background(), rg.streams.Stream, rg.streams.Durable)
		if err != nil {
			t.Fatal(err)
		}
		ci := info.CachedInfo()
		if ci.NumAckPending == 0 {
			if got := uint64(len(evs)) - ci.NumPending; got != uint64(applied) {
				t.Errorf("%d messages acknowledged, %d applied", got, applied)
			}
			break
		}
		if time.Now().After(waitAcked) {
			t.Fatalf("%d messages still unacknowledged after shutdown", ci.NumAckPending)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("stopped after applying %d of %d events; every applied event acknowledged", applied, len(evs))
}
