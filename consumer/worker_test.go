package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionctx/sessionctx/consumer"
	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/histories"
	"github.com/sessionctx/sessionctx/internal/modeltest"
	"github.com/sessionctx/sessionctx/internal/testenv"
)

var tenants = contexts.DefaultTenants()

// flakyStore fails some applies before and some after writing, as Redis
// timeouts and lost acknowledgements would.
type flakyStore struct {
	store *contexts.Store
	mu    sync.Mutex
	r     *rand.Rand
	p     float64
	fails atomic.Int64
}

var errInjected = errors.New("injected failure")

func (f *flakyStore) roll() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.r.Float64() < f.p
}

// ApplyBatch fails some items before applying them and some after.
func (f *flakyStore) ApplyBatch(ctx context.Context, items []contexts.Item) ([]contexts.Result, []error) {
	results := make([]contexts.Result, len(items))
	errs := make([]error, len(items))
	var apply []contexts.Item
	var pos []int
	for i, it := range items {
		if f.roll() {
			f.fails.Add(1)
			errs[i] = errInjected
			continue
		}
		apply, pos = append(apply, it), append(pos, i)
	}
	res, applyErrs := f.store.ApplyBatch(ctx, apply)
	for j, i := range pos {
		results[i], errs[i] = res[j], applyErrs[j]
		if errs[i] == nil && f.roll() {
			f.fails.Add(1)
			errs[i] = errInjected
		}
	}
	return results, errs
}

type rig struct {
	nats    *testenv.NATSEnv
	store   *contexts.Store
	streams consumer.Streams
}

func newRig(t *testing.T, n *testenv.NATSEnv) rig {
	r := testenv.Redis(t)
	return rig{
		nats:    n,
		store:   contexts.NewStore(r.Client, contexts.Options{Prefix: r.Prefix}),
		streams: consumer.Streams{Stream: n.Stream, SubjectPrefix: n.SubjectPrefix}.Defaults(),
	}
}

// startWorker runs a worker until the test ends.
func (r rig) startWorker(t *testing.T, store consumer.Applier) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := consumer.New(consumer.Config{JS: r.nats.JS, Streams: r.streams, Store: store, Tenants: tenants,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})), Concurrency: 2, BatchSize: 32})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
}

func (r rig) publish(t *testing.T, msgID, subject string, body []byte) {
	t.Helper()
	msg := &nats.Msg{Subject: r.streams.SubjectPrefix + subject, Data: body, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	if _, err := r.nats.JS.PublishMsg(context.Background(), msg); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// waitDrained waits until the worker's consumer has nothing pending or unacknowledged.
func (r rig) waitDrained(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	stream, err := r.nats.JS.Stream(context.Background(), r.streams.Stream)
	if err != nil {
		t.Fatal(err)
	}
	// Everything published so far must be acknowledged: a consumer's pending
	// count can lag just after publishing, and read 0 before the worker ran.
	last := stream.CachedInfo().State.LastSeq
	for {
		info, err := r.nats.JS.Consumer(context.Background(), r.streams.Stream, r.streams.Durable)
		if err == nil {
			ci := info.CachedInfo()
			if ci.AckFloor.Stream >= last && ci.NumPending == 0 && ci.NumAckPending == 0 && ci.NumRedelivered == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("consumer not drained after %s: pending %d, ack pending %d", timeout, ci.NumPending, ci.NumAckPending)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("consumer info: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// natsServers runs f against the configured NATS (NATS_URL, a container or
// the embedded server) and against the embedded current server.
func natsServers(t *testing.T, f func(t *testing.T, n *testenv.NATSEnv)) {
	t.Run("configured", func(t *testing.T) { f(t, testenv.NATS(t)) })
	t.Run("embedded-current", func(t *testing.T) { f(t, testenv.NATSEmbedded(t)) })
}

// TestPipelineMatchesModel publishes random histories in shuffled order with
// duplicates, runs two workers whose store fails now and then, and checks
// every session against the reference model.
func TestPipelineMatchesModel(t *testing.T) {
	natsServers(t, func(t *testing.T, n *testenv.NATSEnv) {
		s := modeltest.Seed(t)
		rnd := rand.New(rand.NewPCG(s, s^0x5eed))
		rg := newRig(t, n)
		tenant, _ := tenants.Lookup("acme")
		evs := histories.Generate(rnd, histories.Config{Tenant: "acme", Sessions: 600, Customers: 80,
			Start: time.Now().Add(-3 * time.Hour), Span: 3 * time.Hour})
		deliveries := append([]events.Event{}, evs...)
		for range len(evs) / 5 {
			deliveries = append(deliveries, evs[rnd.IntN(len(evs))])
		}
		rnd.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })

		if _, err := consumer.Provision(context.Background(), n.JS, rg.streams); err != nil {
			t.Fatal(err)
		}
		// A duplicate is published under a message id of its own, as a
		// publisher would after the stream's duplicate window.
		for i, e := range deliveries {
			body, err := events.Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			rg.publish(t, fmt.Sprintf("%s-%d", e.ID, i), e.Subject(), body)
		}
		flaky := []*flakyStore{
			{store: rg.store, r: rand.New(rand.NewPCG(s, 1)), p: 0.05},
			{store: rg.store, r: rand.New(rand.NewPCG(s, 2)), p: 0.05},
		}
		for _, f := range flaky {
			rg.startWorker(t, f)
		}
		rg.waitDrained(t, 2*time.Minute)

		sessions := modeltest.Compare(t, rg.store, tenant, evs)
		dlq, err := n.JS.Stream(context.Background(), rg.streams.DeadLetterStream())
		if err != nil {
			t.Fatal(err)
		}
		if msgs := dlq.CachedInfo().State.Msgs; msgs != 0 {
			t.Errorf("%d messages were dead-lettered; passing failures must be retried instead", msgs)
		}
		injected := flaky[0].fails.Load() + flaky[1].fails.Load()
		if injected == 0 {
			t.Fatal("no failure was injected: the test proved nothing about retries")
		}
		t.Logf("%d events, %d deliveries, %d injected failures, %d sessions: all match the model",
			len(evs), len(deliveries), injected, sessions)
	})
}
