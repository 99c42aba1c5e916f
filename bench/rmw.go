package main

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionctx/sessionctx/contexts"
)

// rawStore is the store of the second ingest baseline: it gives each event
// the least Redis work of applying it, one read of its session's hash and
// one write back with an expiry, in two pipelined round trips per batch. It
// has no atomicity, no stamps and no rule: run by the real worker, it bounds
// what any design with a read and a write per event reaches on these
// servers, and the ratio to it is the cost of the store's programs alone.
type rawStore struct {
	rdb    *redis.Client
	prefix string
}

// ApplyBatch reads every event's session, writes it back and sets its
// expiry.
func (s rawStore) ApplyBatch(ctx context.Context, items []contexts.Item) ([]contexts.Result, []error) {
	results := make([]contexts.Result, len(items))
	errs := make([]error, len(items))
	keys := make([]string, len(items))
	reads := make([]*redis.MapStringStringCmd, len(items))
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, it := range items {
			// a logout naming no session is the customer's
			id := it.Event.Data.SessionID
			if id == "" {
				id = "c:" + it.Event.Data.CustomerID
			}
			keys[i] = s.prefix + "s:{" + it.Event.Tenant + ":" + id + "}"
			reads[i] = p.HGetAll(ctx, keys[i])
		}
		return nil
	})
	expiry := time.Now().Add(time.Hour)
	writes := make([]*redis.BoolCmd, len(items))
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			if errs[i] = reads[i].Err(); errs[i] != nil {
				continue
			}
			p.HSet(ctx, k, "n", len(reads[i].Val())+1, "t", items[i].Event.Time.UnixMilli())
			writes[i] = p.PExpireAt(ctx, k, expiry)
		}
		return nil
	})
	for i, w := range writes {
		if w != nil {
			errs[i] = w.Err()
			results[i].Changed = errs[i] == nil
		}
	}
	return results, errs
}
