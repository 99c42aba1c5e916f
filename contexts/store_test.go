package contexts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/testenv"
)

var (
	t0     = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	tenant = contexts.Tenant{
		Name:              "acme",
		Site:              contexts.Site{Code: "main", Currency: "EUR", HomeBase: "DE", Language: "de"},
		AnonymousLifetime: time.Hour,
	}
)

// at is t0 plus m minutes.
func at(m float64) time.Time { return t0.Add(time.Duration(m * float64(time.Minute))) }

var idSeq int

func ev(typ events.Type, m float64, d events.Data) events.Event {
	return evAt(typ, at(m), d)
}

func evAt(typ events.Type, when time.Time, d events.Data) events.Event {
	idSeq++
	return events.Event{ID: fmt.Sprintf("e%05d", idSeq), Type: typ, Tenant: tenant.Name, Source: "test", Time: when.UTC().Truncate(time.Millisecond), Data: d}
}

func newStore(t *testing.T, now time.Time) (*contexts.Store, *testenv.RedisEnv) {
	t.Helper()
	env := testenv.Redis(t)
	return contexts.NewStore(env.Client, contexts.Options{Prefix: env.Prefix, Now: func() time.Time { return now }}), env
}

func applyAll(t *testing.T, s *contexts.Store, evs ...events.Event) {
	t.Helper()
	for _, e := range evs {
		if _, err := s.Apply(context.Background(), tenant, e); err != nil {
			t.Fatalf("apply %s: %v", e.Type, err)
		}
	}
}

func TestLifecycle(t *testing.T) {
	const sid = "s1"
	anonLogin := ev(events.AnonymousLogin, 0, events.Data{SessionID: sid, SiteCode: "uk", Language: "en"})
	cart := ev(events.CartCreated, 1, events.Data{SessionID: sid, CartID: "cart1", Currency: "GBP"})
	login := ev(events.CustomerLogin, 5, events.Data{SessionID: sid, CustomerID: "c1",
		Customer: &events.Profile{PreferredCurrency: "CHF", BillingCountry: "CH"}})
	refresh := ev(events.AnonymousRefreshed, 50, events.Data{SessionID: sid, ExpiresAt: ptr(at(150))})
	expired := ev(events.AnonymousExpired, 10, events.Data{SessionID: sid})
	logoutAll := ev(events.CustomerLogout, 20, events.Data{CustomerID: "c1"})
	logoutSid := ev(events.CustomerLogout, 20, events.Data{SessionID: sid, CustomerID: "c1"})
	lateCart := ev(events.CartCreated, 30, events.Data{SessionID: sid, CartID: "cart2"})

	cases := []struct {
		name    string
		now     float64 // minutes after t0
		deliver []events.Event
		want    *contexts.Session // nil: no visible context
		ended   bool
	}{
		{name: "anonymous login alone leaves no context", now: 2, deliver: []events.Event{anonLogin}},
		{name: "cart creates an anonymous context with the login's fields", now: 2, deliver: []events.Event{anonLogin, cart},
			want: &contexts.Session{SiteCode: "uk", Currency: "GBP", CartID: "cart1", TargetLocation: "DE", Language: "en"}},
		{name: "cart alone uses tenant defaults", now: 2, deliver: []events.Event{cart},
			want: &contexts.Session{SiteCode: "main", Currency: "GBP", CartID: "cart1", TargetLocation: "DE", Language: "de"}},
		{name: "anonymous context is invisible after its lifetime", now: 61, deliver: []events.Event{anonLogin, cart}},
		{name: "refresh moves the expiry", now: 100, deliver: []events.Event{anonLogin, cart, refresh},
			want: &contexts.Session{SiteCode: "uk", Currency: "GBP", CartID: "cart1", TargetLocation: "DE", Language: "en"}},
		{name: "login after cart migrates in place", now: 6, deliver: []events.Event{anonLogin, cart, login},
			want: &contexts.Session{CustomerID: "c1", SiteCode: "main", Currency: "CHF", CartID: "cart1", TargetLocation: "CH", Language: "de"}},
		{name: "login before cart makes a customer context", now: 6, deliver: []events.Event{login, anonLogin, cart},
			want: &contexts.Session{CustomerID: "c1", SiteCode: "main", Currency: "CHF", CartID: "cart1", TargetLocation: "CH", Language: "de"}},
		{name: "customer context does not time out", now: 60 * 24 * 30, deliver: []events.Event{anonLogin, cart, login},
			want: &contexts.Session{CustomerID: "c1", SiteCode: "main", Currency: "CHF", CartID: "cart1", TargetLocation: "CH", Language: "de"}},
		{name: "anonymous expiry never ends a customer session", now: 11, deliver: []events.Event{anonLogin, cart, login, expired},
			want: &contexts.Session{CustomerID: "c1", SiteCode: "main", Currency: "CHF", CartID: "cart1", TargetLocation: "CH", Language: "de"}},
		{name: "earlier login delivered late cancels the expiry", now: 11, deliver: []events.Event{anonLogin, cart, expired, login},
			want: &contexts.Session{CustomerID: "c1", SiteCode: "main", Currency: "CHF", CartID: "cart1", TargetLocation: "CH", Language: "de"}},
		{name: "anonymous expiry ends an anonymous session", now: 11, deliver: []events.Event{anonLogin, cart, expired}, ended: true},
		{name: "logout naming no session ends the customer's session", now: 21, deliver: []events.Event{anonLogin, cart, login, logoutAll}, ended: true},
		{name: "logout naming no session, delivered before the login", now: 21, deliver: []events.Event{logoutAll, anonLogin, cart, login}, ended: true},
		{name: "logout naming the session ends it", now: 21, deliver: []events.Event{anonLogin, cart, login, logoutSid}, ended: true},
		{name: "late cart after logout does not resurrect", now: 31, deliver: []events.Event{anonLogin, cart, login, logoutSid, lateCart}, ended: true},
		{name: "logout of an unknown session leaves a tombstone", now: 31, deliver: []events.Event{logoutSid, anonLogin, lateCart}, ended: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := at(tc.now)
			s, _ := newStore(t, now)
			applyAll(t, s, tc.deliver...)
			got, err := s.Get(context.Background(), tenant, sid)
			if tc.want == nil {
				if !errors.Is(err, contexts.ErrNotFound) {
					t.Fatalf("Get = %+v, %v; want ErrNotFound", got, err)
				}
			} else {
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				want := *tc.want
				want.SessionID = sid
				want.Metadata = got.Metadata
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("Get =\n %+v\nwant\n %+v", got, want)
				}
				if got.Metadata.Version < 1 || !got.Metadata.CreatedAt.Equal(cart.Time) {
					t.Errorf("metadata = %+v, want version >= 1 and createdAt %s", got.Metadata, cart.Time)
				}
			}
			o, err := s.Inspect(context.Background(), tenant, sid)
			if err != nil {
				t.Fatal(err)
			}
			if o.Ended != tc.ended {
				t.Errorf("ended = %v, want %v", o.Ended, tc.ended)
			}
			if model := contexts.Fold(tenant, sid, tc.deliver); o != model {
				t.Errorf("store outcome\n %+v\ndiffers from the reference model\n %+v", o, model)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestLogoutNamingNoSessionEndsEverySessionOfTheCustomer(t *testing.T) {
	s, _ := newStore(t, at(30))
	var all []events.Event
	for i, sid := range []string{"a", "b", "c"} {
		all = append(all,
			ev(events.CartCreated, float64(i), events.Data{SessionID: sid, CartID: "cart-" + sid}),
			ev(events.CustomerLogin, float64(i)+1, events.Data{SessionID: sid, CustomerID: "c7"}))
	}
	other := ev(events.CartCreated, 1, events.Data{SessionID: "d", CartID: "cart-d"})
	otherLogin := ev(events.CustomerLogin, 2, events.Data{SessionID: "d", CustomerID: "c8"})
	logout := ev(events.CustomerLogout, 10, events.Data{CustomerID: "c7"})
	laterLogin := ev(events.CustomerLogin, 11, events.Data{SessionID: "e", CustomerID: "c7"})
	laterCart := ev(events.CartCreated, 12, events.Data{SessionID: "e", CartID: "cart-e"})
	applyAll(t, s, all[:4]...)
	applyAll(t, s, other, otherLogin, logout)
	applyAll(t, s, all[4:]...) // session c's events arrive after the logout
	applyAll(t, s, laterLogin, laterCart)
	everything := append(all, other, otherLogin, logout, laterLogin, laterCart)
	for _, tc := range []struct {
		sid     string
		visible bool
	}{{"a", false}, {"b", false}, {"c", false}, {"d", true}, {"e", true}} {
		_, err := s.Get(context.Background(), tenant, tc.sid)
		if visible := err == nil; visible != tc.visible {
			t.Errorf("session %s visible = %v (%v), want %v", tc.sid, visible, err, tc.visible)
		}
		o, err := s.Inspect(context.Background(), tenant, tc.sid)
		if err != nil {
			t.Fatal(err)
		}
		if model := contexts.Fold(tenant, tc.sid, everything); o != model {
			t.Errorf("session %s: store %+v, model %+v", tc.sid, o, model)
		}
	}
}

func TestTTLFollowsEventTime(t *testing.T) {
	ctx := context.Background()
	// Redis expires keys by its own clock, so this test's events are relative to the real time.
	now := time.Now()
	rel := func(typ events.Type, d time.Duration, data events.Data) events.Event {
		return evAt(typ, now.Add(d), data)
	}
	week := 7 * 24 * time.Hour
	cases := []struct {
		name    string
		deliver []events.Event
		// wantTTL: -1 no expiry; otherwise the expected PTTL, rounded to minutes.
		wantTTL time.Duration
		visible bool
	}{
		{name: "live anonymous context lives until its expiry plus retention",
			deliver: []events.Event{rel(events.CartCreated, 0, events.Data{SessionID: "s", CartID: "c"})},
			wantTTL: time.Hour + 24*time.Hour, visible: true},
		{name: "customer context has no TTL",
			deliver: []events.Event{rel(events.CartCreated, 0, events.Data{SessionID: "s", CartID: "c"}),
				rel(events.CustomerLogin, time.Minute, events.Data{SessionID: "s", CustomerID: "c1"})},
			wantTTL: -1, visible: true},
		{name: "a week-old replayed anonymous session is not visible and is kept only for the retention",
			deliver: []events.Event{rel(events.AnonymousLogin, -week, events.Data{SessionID: "s"}),
				rel(events.CartCreated, -week+time.Minute, events.Data{SessionID: "s", CartID: "c"})},
			wantTTL: 24 * time.Hour},
		{name: "a tombstone is kept for the retention after its end",
			deliver: []events.Event{rel(events.CartCreated, 0, events.Data{SessionID: "s", CartID: "c"}),
				rel(events.CustomerLogout, 30*time.Second, events.Data{SessionID: "s", CustomerID: "c1"})},
			wantTTL: 24 * time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, env := newStore(t, now)
			applyAll(t, s, tc.deliver...)
			ttl, err := env.Client.PTTL(ctx, env.Prefix+"s:{acme:s}").Result()
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantTTL < 0 {
				if ttl >= 0 {
					t.Errorf("PTTL = %s, want none", ttl)
				}
			} else if ttl.Round(time.Minute) != tc.wantTTL {
				t.Errorf("PTTL = %s, want about %s", ttl, tc.wantTTL)
			}
			_, err = s.Get(ctx, tenant, "s")
			if visible := err == nil; visible != tc.visible {
				t.Errorf("visible = %v (%v), want %v", visible, err, tc.visible)
			}
		})
	}
}

func TestVersionCountsVisibleChanges(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, at(3))
	login := ev(events.CustomerLogin, 0, events.Data{SessionID: "s", CustomerID: "c1"})
	cart := ev(events.CartCreated, 1, events.Data{SessionID: "s", CartID: "cart"})
	refresh := ev(events.AnonymousRefreshed, 2, events.Data{SessionID: "s"})
	steps := []struct {
		deliver     events.Event
		wantVersion int64
		wantChanged bool
	}{
		{login, 0, true}, // pending: not visible yet
		{cart, 1, true},  // becomes visible: version 1 even though the login came first
		{cart, 1, false}, // duplicate
		{login, 1, false},
		{refresh, 1, true}, // a refresh moves the expiry only
	}
	for i, st := range steps {
		res, err := s.Apply(ctx, tenant, st.deliver)
		if err != nil {
			t.Fatal(err)
		}
		if res.Changed != st.wantChanged {
			t.Errorf("step %d: changed = %v, want %v", i, res.Changed, st.wantChanged)
		}
		got, err := s.Get(ctx, tenant, "s")
		if st.wantVersion == 0 {
			if !errors.Is(err, contexts.ErrNotFound) {
				t.Errorf("step %d: Get = %v, want not found", i, err)
			}
			continue
		}
		if err != nil || got.Metadata.Version != st.wantVersion {
			t.Errorf("step %d: version = %d (%v), want %d", i, got.Metadata.Version, err, st.wantVersion)
		}
	}
}

func TestEdits(t *testing.T) {
	ctx := context.Background()
	one := int64(1)
	// Edits are stamped with Redis's clock: this test's events are relative to the real time.
	now := time.Now()
	s, _ := newStore(t, now)
	applyAll(t, s, evAt(events.CartCreated, now.Add(-2*time.Minute), events.Data{SessionID: "s", CartID: "cart"}))
	v, err := s.Edit(ctx, tenant, "s", contexts.Edit{Version: &one, Set: map[contexts.Field]string{contexts.FieldCurrency: "USD"},
		ReplaceContext: true, Context: map[string]json.RawMessage{"a": json.RawMessage(`{"x":1.50}`)}})
	if err != nil || v != 2 {
		t.Fatalf("edit = %d, %v; want version 2", v, err)
	}
	if _, err := s.Edit(ctx, tenant, "s", contexts.Edit{Version: &one}); !errors.As(err, new(*contexts.VersionConflictError)) {
		t.Fatalf("stale version: err = %v, want conflict", err)
	}
	// A login stamped before the edit, delivered after it, does not override the currency.
	applyAll(t, s, evAt(events.CustomerLogin, now.Add(-time.Minute), events.Data{SessionID: "s", CustomerID: "c1", Customer: &events.Profile{PreferredCurrency: "CHF"}}))
	got, err := s.Get(ctx, tenant, "s")
	if err != nil {
		t.Fatal(err)
	}
	if got.Currency != "USD" || got.CustomerID != "c1" || string(got.Context["a"]) != `{"x":1.50}` {
		t.Errorf("after late login: %+v", got)
	}
	if _, err := s.Edit(ctx, tenant, "s", contexts.Edit{Access: contexts.Access{Kind: contexts.AccessAnonymous}, SetAttributes: map[string]json.RawMessage{"b": json.RawMessage(`2`)}}); !errors.Is(err, contexts.ErrNotFound) {
		t.Errorf("anonymous edit of a customer session: err = %v, want not found", err)
	}
	noCustomer, c1 := "", "c1"
	if _, err := s.Edit(ctx, tenant, "s", contexts.Edit{ExpectCustomerID: &noCustomer}); !errors.As(err, new(*contexts.VersionConflictError)) {
		t.Errorf("edit expecting no customer after a login: err = %v, want conflict", err)
	}
	if _, err := s.Edit(ctx, tenant, "s", contexts.Edit{ExpectCustomerID: &c1}); err != nil {
		t.Errorf("edit expecting the stored customer: %v", err)
	}
	if _, err := s.Edit(ctx, tenant, "s", contexts.Edit{DeleteAttribute: "nope"}); !errors.Is(err, contexts.ErrNoAttribute) {
		t.Errorf("delete missing attribute: err = %v", err)
	}
	if _, err := s.Edit(ctx, tenant, "gone", contexts.Edit{Upsert: &contexts.Upsert{}}); err != nil {
		t.Errorf("upsert: %v", err)
	}
	applyAll(t, s, evAt(events.CustomerLogout, now.Add(-time.Minute), events.Data{SessionID: "ended", CustomerID: "c1"}))
	if _, err := s.Edit(ctx, tenant, "ended", contexts.Edit{Upsert: &contexts.Upsert{}}); !errors.Is(err, contexts.ErrEnded) {
		t.Errorf("upsert of an ended session: err = %v, want ErrEnded", err)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	ctx := context.Background()
	env := testenv.Redis(t)
	live := contexts.NewStore(env.Client, contexts.Options{Prefix: env.Prefix})
	dry := contexts.NewStore(env.Client, contexts.Options{Prefix: env.Prefix, DryRun: true})
	cart := evAt(events.CartCreated, time.Now(), events.Data{SessionID: "s", CartID: "c"})
	login := evAt(events.CustomerLogin, time.Now(), events.Data{SessionID: "s", CustomerID: "c1"})
	logout := evAt(events.CustomerLogout, time.Now().Add(time.Second), events.Data{CustomerID: "c1"})
	applyAll(t, live, cart)
	dump := func() string { // every key with its contents and TTL
		keys, _ := env.Client.Keys(ctx, env.Prefix+"*").Result()
		slices.Sort(keys)
		out := ""
		for _, k := range keys {
			out += fmt.Sprintln(k, env.Client.Dump(ctx, k).Val(), env.Client.PTTL(ctx, k).Val().Round(time.Minute))
		}
		return out
	}
	before := dump()
	for _, tc := range []struct {
		e           events.Event
		wantChanged bool
	}{{cart, false}, {login, true}, {logout, false}} {
		res, err := dry.Apply(ctx, tenant, tc.e)
		if err != nil {
			t.Fatal(err)
		}
		if res.Changed != tc.wantChanged {
			t.Errorf("dry %s: changed = %v, want %v", tc.e.Type, res.Changed, tc.wantChanged)
		}
	}
	if after := dump(); after != before {
		t.Errorf("dry run changed Redis:\n%s\n->\n%s", before, after)
	}
	if got, err := live.Get(ctx, tenant, "s"); err != nil || got.CustomerID != "" || got.Metadata.Version != 1 {
		t.Errorf("dry run changed the session: %+v, %v", got, err)
	}
}
