package consumer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sessionctx/sessionctx/consumer"
	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/histories"
	"github.com/sessionctx/sessionctx/internal/modeltest"
	"github.com/sessionctx/sessionctx/internal/testenv"
)

func (r rig) publishAll(t *testing.T, evs []events.Event) {
	t.Helper()
	if _, err := consumer.Provision(context.Background(), r.nats.JS, r.streams); err != nil {
		t.Fatal(err)
	}
	pub := events.Publisher{JS: r.nats.JS, SubjectPrefix: r.streams.SubjectPrefix}
	for _, e := range evs {
		if _, err := pub.Publish(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot is the lifecycle outcome of every session: all that events
// decide (attributes come from the API only), independent of the wall clock.
func snapshot(t *testing.T, s *contexts.Store, tenant contexts.Tenant, sids []string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	for _, sid := range sids {
		o, err := s.Inspect(context.Background(), tenant, sid)
		if err != nil {
			t.Fatal(err)
		}
		snap[sid] = fmt.Sprintf("%+v", o)
	}
	return snap
}

// sameSnapshots fails the test when a session's outcome differs from the live one.
func sameSnapshots(t *testing.T, what string, live, got map[string]string) {
	t.Helper()
	differ := 0
	for sid, want := range live {
		if got[sid] != want {
			if differ++; differ <= 3 {
				t.Errorf("session %s differs after %s:\n live %s\n got  %s", sid, what, want, got[sid])
			}
		}
	}
	if differ > 0 {
		t.Fatalf("%d of %d sessions differ after %s", differ, len(live), what)
	}
}

// rawKeys returns every key under prefix with its contents: hashes whole,
// sorted sets by member (their scores, like TTLs, are retention bookkeeping
// that a replay refreshes).
func rawKeys(t *testing.T, r *testenv.RedisEnv) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := r.Client.Keys(ctx, r.Prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		switch typ := r.Client.Type(ctx, k).Val(); typ {
		case "hash":
			out[k] = fmt.Sprint(r.Client.HGetAll(ctx, k).Val())
		case "zset":
			members := r.Client.ZRange(ctx, k, 0, -1).Val()
			slices.Sort(members)
			out[k] = fmt.Sprint(members)
		default:
			out[k] = typ
		}
	}
	return out
}

// TestReplayIsDeterministic processes random events live, rebuilds from the
// stream into an empty store, and compares; then replays twice into the live
// store, which must change nothing.
func TestReplayIsDeterministic(t *testing.T) {
	s := modeltest.Seed(t)
	rnd := rand.New(rand.NewPCG(s, 7))
	n := testenv.NATS(t)
	rg := newRig(t, n)
	live := testenv.Redis(t)
	liveStore := contexts.NewStore(live.Client, contexts.Options{Prefix: live.Prefix})
	tenant, _ := tenants.Lookup("acme")
	evs := histories.Generate(rnd, histories.Config{Tenant: "acme", Sessions: 700, Customers: 90,
		Start: time.Now().Add(-2 * time.Hour), Span: 2 * time.Hour})
	rg.publishAll(t, evs)
	rg.startWorker(t, liveStore)
	rg.waitDrained(t, 2*time.Minute)
	sids := histories.SessionIDs(evs)
	want := snapshot(t, liveStore, tenant, sids)

	empty := testenv.Redis(t)
	rebuilt := contexts.NewStore(empty.Client, contexts.Options{Prefix: empty.Prefix})
	sum, err := consumer.Replay(context.Background(), consumer.ReplayConfig{
		Config: consumer.Config{JS: n.JS, Streams: rg.streams, Store: rebuilt, Tenants: tenants}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Read != int64(len(evs)) || sum.Interrupted || sum.Invalid != 0 {
		t.Fatalf("rebuild summary %+v, want %d events read", sum, len(evs))
	}
	sameSnapshots(t, "a rebuild", want, snapshot(t, rebuilt, tenant, sids))

	// A rebuild interrupted after its third batch, then resumed where it
	// stopped, gives the same contexts.
	third := testenv.Redis(t)
	resumed := contexts.NewStore(third.Client, contexts.Options{Prefix: third.Prefix})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	batches := 0
	cfg := consumer.ReplayConfig{
		Config: consumer.Config{JS: n.JS, Streams: rg.streams, Store: resumed, Tenants: tenants, BatchSize: 200, Concurrency: 4},
		Progress: func(consumer.ReplayProgress) {
			batches++
			if batches == 3 {
				cancel()
			}
		},
	}
	first, err := consumer.Replay(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Interrupted || first.Read != 600 || first.NextSeq <= 600 || first.Done >= first.Total {
		t.Fatalf("interrupted replay: %+v, want 3 batches of 200 events applied and Interrupted", first)
	}
	cfg.FromSeq = first.NextSeq
	second, err := consumer.Replay(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if second.Interrupted || first.Read+second.Read != int64(len(evs)) {
		t.Fatalf("resumed replay: %+v after %+v, want the other %d events", second, first, len(evs)-int(first.Read))
	}
	sameSnapshots(t, "an interrupted and resumed rebuild", want, snapshot(t, resumed, tenant, sids))

	before := rawKeys(t, live)
	for i := range 2 {
		sum, err := consumer.Replay(context.Background(), consumer.ReplayConfig{
			Config: consumer.Config{JS: n.JS, Streams: rg.streams, Store: liveStore, Tenants: tenants}})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Applied != 0 || sum.Unchanged != int64(len(evs)) {
			t.Errorf("repair replay %d into the live store: %+v, want nothing applied", i+1, sum)
		}
	}
	after := rawKeys(t, live)
	for k, v := range after {
		if before[k] != v {
			t.Errorf("replaying into the live store changed %s:\n before %s\n after  %s", k, before[k], v)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("replaying into the live store removed %s", k)
		}
	}
	t.Logf("%d events over %d sessions: rebuild equal, repair replays changed nothing", len(evs), len(sids))
}

// TestReplayOfOldEvents rebuilds from events older than the anonymous
// lifetime: no anonymous context comes back, customer contexts that never
// logged out do.
func TestReplayOfOldEvents(t *testing.T) {
	n := testenv.NATS(t)
	rg := newRig(t, n)
	tenant, _ := tenants.Lookup("acme")
	old := time.Now().Add(-5 * time.Hour).Truncate(time.Millisecond)
	ev := func(typ events.Type, minutes int, d events.Data) events.Event {
		e := events.New(typ, "acme", "test", d)
		e.Time = old.Add(time.Duration(minutes) * time.Minute)
		return e
	}
	evs := []events.Event{
		ev(events.AnonymousLogin, 0, events.Data{SessionID: "anon"}),
		ev(events.CartCreated, 1, events.Data{SessionID: "anon", CartID: "c1"}),
		ev(events.AnonymousRefreshed, 30, events.Data{SessionID: "anon"}),
		ev(events.CartCreated, 0, events.Data{SessionID: "cust", CartID: "c2"}),
		ev(events.CustomerLogin, 2, events.Data{SessionID: "cust", CustomerID: "k1"}),
		ev(events.CartCreated, 0, events.Data{SessionID: "gone", CartID: "c3"}),
		ev(events.CustomerLogin, 2, events.Data{SessionID: "gone", CustomerID: "k2"}),
		ev(events.CustomerLogout, 60, events.Data{CustomerID: "k2"}),
	}
	rg.publishAll(t, evs)
	sum, err := consumer.Replay(context.Background(), consumer.ReplayConfig{
		Config: consumer.Config{JS: n.JS, Streams: rg.streams, Store: rg.store, Tenants: tenants}})
	if err != nil || sum.Read != int64(len(evs)) {
		t.Fatalf("replay: %+v, %v", sum, err)
	}
	for sid, visible := range map[string]bool{"anon": false, "cust": true, "gone": false} {
		_, err := rg.store.Get(context.Background(), tenant, sid)
		if (err == nil) != visible {
			t.Errorf("session %s visible = %v (%v), want %v", sid, err == nil, err, visible)
		}
	}
}

// TestReplayFromSequenceAndTenant resumes from a sequence and filters by tenant.
func TestReplayFromSequenceAndTenant(t *testing.T) {
	n := testenv.NATS(t)
	rg := newRig(t, n)
	var evs []events.Event
	for i := range 10 {
		tenant := "acme"
		if i%2 == 1 {
			tenant = "globex"
		}
		evs = append(evs, events.New(events.CartCreated, tenant, "test", events.Data{SessionID: fmt.Sprint("s", i), CartID: "c"}))
	}
	rg.publishAll(t, evs)
	cases := []struct {
		name     string
		tenant   string
		fromSeq  uint64
		wantRead int64
	}{
		{"everything", "", 0, 10},
		{"from sequence 7", "", 7, 4},
		{"one tenant", "globex", 0, 5},
		{"one tenant from sequence 7", "acme", 7, 2},
		{"past the end", "", 11, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var progress []consumer.ReplayProgress
			sum, err := consumer.Replay(context.Background(), consumer.ReplayConfig{
				Config: consumer.Config{JS: n.JS, Streams: rg.streams, Store: rg.store, Tenants: tenants, BatchSize: 3},
				Tenant: tc.tenant, FromSeq: tc.fromSeq,
				Progress: func(p consumer.ReplayProgress) { progress = append(progress, p) }})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Read != tc.wantRead {
				t.Errorf("read %d, want %d (%+v)", sum.Read, tc.wantRead, sum)
			}
			if tc.wantRead > 0 && (len(progress) == 0 || progress[len(progress)-1].Done != progress[len(progress)-1].Total ||
				progress[len(progress)-1].NextSeq != 11) {
				t.Errorf("progress %+v does not end at the stream's end", progress)
			}
		})
	}
}
