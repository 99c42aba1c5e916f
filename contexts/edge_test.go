package contexts_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/testenv"
)

// TestManyOldLogoutsDoNotRevive delivers, after the logout that ended a
// session, more logouts stamped before its login than a session keeps.
func TestManyOldLogoutsDoNotRevive(t *testing.T) {
	now := time.Now()
	s, _ := newStore(t, now)
	login := evAt(events.CustomerLogin, now.Add(-time.Hour), events.Data{SessionID: "s", CustomerID: "c"})
	cart := evAt(events.CartCreated, now.Add(-time.Hour), events.Data{SessionID: "s", CartID: "k"})
	logout := evAt(events.CustomerLogout, now.Add(-time.Minute), events.Data{CustomerID: "c"})
	all := []events.Event{login, cart, logout}
	applyAll(t, s, all...)
	for i := range 40 {
		old := evAt(events.CustomerLogout, now.Add(-3*time.Hour+time.Duration(i)*time.Minute), events.Data{CustomerID: "c"})
		all = append(all, old)
		applyAll(t, s, old)
	}
	got, err := s.Inspect(context.Background(), tenant, "s")
	if err != nil {
		t.Fatal(err)
	}
	if want := contexts.Fold(tenant, "s", all); got != want || !got.Ended {
		t.Errorf("store %+v, model %+v", got, want)
	}
}

// TestEditsInOneMillisecond: of two edits that both pass the version check,
// the later wins, however close together.
func TestEditsInOneMillisecond(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, time.Now())
	applyAll(t, s, evAt(events.CartCreated, time.Now(), events.Data{SessionID: "s", CartID: "k"}))
	v := int64(1)
	for i := range 50 {
		for _, cur := range []string{"USD", "GBP"} {
			var err error
			if v, err = s.Edit(ctx, tenant, "s", contexts.Edit{Version: &v, Set: map[contexts.Field]string{contexts.FieldCurrency: cur}}); err != nil {
				t.Fatalf("round %d %s: %v", i, cur, err)
			}
		}
		got, err := s.Get(ctx, tenant, "s")
		if err != nil || got.Currency != "GBP" {
			t.Fatalf("round %d: currency %q (%v), want the later edit's GBP", i, got.Currency, err)
		}
	}
	if v != 101 {
		t.Errorf("version %d after 100 edits, want 101", v)
	}
	// An edit that writes what is already shown bumps no version; the edit
	// right after it must still win.
	for i := range 50 {
		cur := []string{"USD", "GBP"}[i%2]
		for _, c := range []string{"GBP", cur} {
			if _, err := s.Edit(ctx, tenant, "s", contexts.Edit{Set: map[contexts.Field]string{contexts.FieldCurrency: c}}); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.Get(ctx, tenant, "s"); err != nil || got.Currency != cur {
			t.Fatalf("round %d: currency %q (%v), want the later edit's %s", i, got.Currency, err, cur)
		}
	}
}

func TestUpserts(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	none, c := "", "c"
	cases := []struct {
		name    string
		before  []events.Event
		edit    contexts.Edit
		wantErr func(error) bool
		check   func(t *testing.T, s *contexts.Store, env *testenv.RedisEnv)
	}{
		{name: "a customer's pending login claims the session",
			before:  []events.Event{evAt(events.CustomerLogin, now, events.Data{SessionID: "s", CustomerID: "c"})},
			edit:    contexts.Edit{Upsert: &contexts.Upsert{}, ExpectCustomerID: &none},
			wantErr: func(err error) bool { var ce *contexts.CustomerError; return errors.As(err, &ce) && ce.Stored == "c" }},
		{name: "the customer's upsert completes its pending context",
			before: []events.Event{evAt(events.CustomerLogin, now, events.Data{SessionID: "s", CustomerID: "c"})},
			edit:   contexts.Edit{Upsert: &contexts.Upsert{CustomerID: "c"}, ExpectCustomerID: &c},
			check: func(t *testing.T, s *contexts.Store, _ *testenv.RedisEnv) {
				if got, err := s.Get(ctx, tenant, "s"); err != nil || got.CustomerID != "c" {
					t.Errorf("Get = %+v, %v", got, err)
				}
			}},
		{name: "a customer context made by upsert ends with the customer's logout",
			edit: contexts.Edit{Upsert: &contexts.Upsert{CustomerID: "c"}},
			check: func(t *testing.T, s *contexts.Store, _ *testenv.RedisEnv) {
				applyAll(t, s, evAt(events.CustomerLogout, time.Now().Add(time.Second), events.Data{CustomerID: "c"}))
				if _, err := s.Get(ctx, tenant, "s"); !errors.Is(err, contexts.ErrNotFound) {
					t.Errorf("after the customer's logout: %v, want not found", err)
				}
			}},
		{name: "an upsert over a lapsed anonymous login survives its redelivery",
			before: []events.Event{evAt(events.AnonymousLogin, now.Add(-2*time.Hour), events.Data{SessionID: "s"})},
			edit:   contexts.Edit{Upsert: &contexts.Upsert{}},
			check: func(t *testing.T, s *contexts.Store, _ *testenv.RedisEnv) {
				got, err := s.Get(ctx, tenant, "s")
				if err != nil {
					t.Fatalf("after upsert: %v", err)
				}
				applyAll(t, s, evAt(events.AnonymousLogin, now.Add(-2*time.Hour), events.Data{SessionID: "s"}))
				if again, err := s.Get(ctx, tenant, "s"); err != nil || again.Metadata.Version != got.Metadata.Version {
					t.Errorf("after the login's redelivery: %+v, %v", again, err)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, env := newStore(t, now)
			applyAll(t, s, tc.before...)
			_, err := s.Edit(ctx, tenant, "s", tc.edit)
			if tc.wantErr != nil {
				if !tc.wantErr(err) {
					t.Fatalf("Edit: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Edit: %v", err)
			}
			tc.check(t, s, env)
		})
	}
}

// TestCustomerIndexKeepsEndedSessionsUntilTheyGo checks the index that
// logouts naming no session use.
func TestCustomerIndexKeepsEndedSessionsUntilTheyGo(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	s, env := newStore(t, now)
	applyAll(t, s,
		evAt(events.CustomerLogin, now.Add(-time.Hour), events.Data{SessionID: "live", CustomerID: "c"}),
		evAt(events.CustomerLogin, now.Add(-time.Hour), events.Data{SessionID: "gone", CustomerID: "c"}),
		evAt(events.CustomerLogout, now.Add(-time.Minute), events.Data{SessionID: "gone", CustomerID: "c"}),
		evAt(events.CustomerLogin, now.Add(-time.Hour), events.Data{SessionID: "other", CustomerID: "d"}),
		evAt(events.CustomerLogout, now.Add(-2*time.Hour), events.Data{CustomerID: "c"}), // before the logins: ends nothing
	)
	index := env.Prefix + "cs:{acme:c:c}"
	scores, err := env.Client.ZRangeWithScores(ctx, index, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, z := range scores {
		got[z.Member.(string)] = z.Score
	}
	keep := float64(now.Add(-time.Minute).Add(24 * time.Hour).UnixMilli())
	if len(got) != 2 || !math.IsInf(got["live"], 1) || math.Abs(got["gone"]-max(keep, float64(now.Add(24*time.Hour).UnixMilli()))) > 5000 {
		t.Errorf("index %v: want live at +inf and gone until its record goes", got)
	}
	if ttl := env.Client.PTTL(ctx, index).Val(); ttl >= 0 {
		t.Errorf("index with a live session expires in %s", ttl)
	}
}

// TestCustomerIndexFollowsEveryLogout: a logout naming its session lowers
// the session's keep-until time in the customer's index, and a login after
// every session of the customer had ended makes the index lasting again.
func TestCustomerIndexFollowsEveryLogout(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	s, env := newStore(t, now)
	index := env.Prefix + "cs:{acme:c:c}"
	applyAll(t, s,
		evAt(events.CustomerLogin, now.Add(-time.Hour), events.Data{SessionID: "a", CustomerID: "c"}),
		evAt(events.CustomerLogout, now.Add(-time.Minute), events.Data{SessionID: "a", CustomerID: "c"}),
	)
	if score := env.Client.ZScore(ctx, index, "a").Val(); math.IsInf(score, 1) {
		t.Errorf("session a, logged out, is kept at +inf in the index")
	}
	if ttl := env.Client.PTTL(ctx, index).Val(); ttl <= 0 {
		t.Errorf("index of ended sessions only has TTL %s, want it to expire", ttl)
	}
	applyAll(t, s, evAt(events.CustomerLogin, now.Add(-30*time.Second), events.Data{SessionID: "b", CustomerID: "c"}))
	if ttl := env.Client.PTTL(ctx, index).Val(); ttl >= 0 {
		t.Errorf("index with the live session b expires in %s", ttl)
	}
}

// TestIdleLimitCountsAttributeEdits: a customer context's idle limit runs
// from its last change, attribute edits included.
func TestIdleLimitCountsAttributeEdits(t *testing.T) {
	ctx := context.Background()
	idle := tenant
	idle.CustomerIdleLimit = 30 * time.Minute
	now := time.Now()
	s, _ := newStore(t, now)
	for _, e := range []events.Event{
		evAt(events.CartCreated, now.Add(-20*time.Minute), events.Data{SessionID: "s", CartID: "k"}),
		evAt(events.CustomerLogin, now.Add(-20*time.Minute), events.Data{SessionID: "s", CustomerID: "c"}),
	} {
		if _, err := s.Apply(ctx, idle, e); err != nil {
			t.Fatal(err)
		}
	}
	o, _ := s.Inspect(ctx, idle, "s")
	if want := now.Add(10 * time.Minute).Truncate(time.Millisecond); !o.Until.Equal(want) {
		t.Fatalf("until %s, want %s (last change plus the idle limit)", o.Until, want)
	}
	before := time.Now()
	if _, err := s.Edit(ctx, idle, "s", contexts.Edit{SetAttributes: map[string]json.RawMessage{"a": json.RawMessage(`1`)}}); err != nil {
		t.Fatal(err)
	}
	o, _ = s.Inspect(ctx, idle, "s")
	if o.Until.Before(before.Add(30*time.Minute - time.Second)) {
		t.Errorf("until %s after an attribute edit at %s, want 30 minutes later", o.Until, before)
	}
}

// TestLogoutDoesNotUnindexALoginInFlight: a login has indexed its session
// (+inf) but not yet reached it when a logout of the customer, stamped
// before the login, is applied. The session must stay indexed as live.
func TestLogoutDoesNotUnindexALoginInFlight(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	s, env := newStore(t, now)
	index := env.Prefix + "cs:{acme:c:c}"
	if err := env.Client.ZAdd(ctx, index, redis.Z{Score: math.Inf(1), Member: "s"}).Err(); err != nil { // the login's first step
		t.Fatal(err)
	}
	applyAll(t, s, evAt(events.CustomerLogout, now.Add(-time.Hour), events.Data{CustomerID: "c"}))
	if score := env.Client.ZScore(ctx, index, "s").Val(); !math.IsInf(score, 1) {
		t.Fatalf("index score %v after the logout, want +inf: the login in flight would be lost to later logouts", score)
	}
	applyAll(t, s,
		evAt(events.CustomerLogin, now.Add(-time.Minute), events.Data{SessionID: "s", CustomerID: "c"}),
		evAt(events.CartCreated, now.Add(-time.Minute), events.Data{SessionID: "s", CartID: "k"}),
		evAt(events.CustomerLogout, now, events.Data{CustomerID: "c"}))
	if _, err := s.Get(ctx, tenant, "s"); !errors.Is(err, contexts.ErrNotFound) {
		t.Errorf("the customer's later logout did not end the session: %v", err)
	}
}

// TestLargeContextsAreReadByName: an event reads a session whose hash holds
// a large value (Redis keeps it as a hashtable) by field name, customers'
// logins and logouts included, and comes to the model's outcome.
func TestLargeContextsAreReadByName(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	s, env := newStore(t, now)
	cart := evAt(events.CartCreated, now.Add(-10*time.Minute), events.Data{SessionID: "s", CartID: "k"})
	applyAll(t, s, cart)
	big := json.RawMessage(`"` + strings.Repeat("x", 500) + `"`)
	if _, err := s.Edit(ctx, tenant, "s", contexts.Edit{SetAttributes: map[string]json.RawMessage{"wishlist": big}}); err != nil {
		t.Fatal(err)
	}
	if enc := env.Client.ObjectEncoding(ctx, env.Prefix+"s:{acme:s}").Val(); enc != "hashtable" {
		t.Logf("the hash is a %q, not a hashtable (miniredis has no encodings): the path by name is not taken", enc)
	}
	evs := []events.Event{
		cart,
		evAt(events.CustomerLogin, now.Add(-5*time.Minute), events.Data{SessionID: "s", CustomerID: "c"}),
		evAt(events.CustomerLogout, now.Add(-time.Minute), events.Data{CustomerID: "c"}),
	}
	applyAll(t, s, evs[1:]...)
	got, err := s.Inspect(ctx, tenant, "s")
	if err != nil {
		t.Fatal(err)
	}
	if want := contexts.Fold(tenant, "s", evs); got != want || !got.Ended {
		t.Errorf("store %+v, model %+v (ended by the customer's logout)", got, want)
	}
}
