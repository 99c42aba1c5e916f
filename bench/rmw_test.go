package main

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/testenv"
)

// TestRawStore checks that the second ingest baseline does the Redis work it
// claims: each event reads its session's hash, writes it back with the
// event's time and sets an expiry; a logout naming no session uses the
// customer's key.
func TestRawStore(t *testing.T) {
	r := testenv.Redis(t)
	ctx := context.Background()
	store := rawStore{rdb: r.Client, prefix: r.Prefix}
	at := time.UnixMilli(1_796_371_338_577).UTC()
	item := func(typ events.Type, session, customer string) contexts.Item {
		return contexts.Item{Event: events.Event{Type: typ, Tenant: "acme", Time: at,
			Data: events.Data{SessionID: session, CustomerID: customer}}}
	}
	batch := []contexts.Item{
		item(events.CartCreated, "s1", ""),
		item(events.CustomerLogin, "s2", "c1"),
		item(events.CustomerLogout, "", "c1"),
	}
	keys := []string{r.Prefix + "s:{acme:s1}", r.Prefix + "s:{acme:s2}", r.Prefix + "s:{acme:c:c1}"}

	// n is the number of fields read plus one: 1 on an empty key, then 3
	// once n and t are there.
	for round, wantN := range []string{"1", "3"} {
		results, errs := store.ApplyBatch(ctx, batch)
		for i, k := range keys {
			if errs[i] != nil || !results[i].Changed {
				t.Fatalf("round %d, event %d: changed %v, error %v", round, i, results[i].Changed, errs[i])
			}
			got, err := r.Client.HGetAll(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if got["n"] != wantN || got["t"] != strconv.FormatInt(at.UnixMilli(), 10) {
				t.Errorf("round %d: %s holds %v, want n=%s and t=%d", round, k, got, wantN, at.UnixMilli())
			}
			if ttl := r.Client.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour {
				t.Errorf("round %d: %s expires in %s, want within an hour", round, k, ttl)
			}
		}
	}
}
