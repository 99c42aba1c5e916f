package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessionctx/sessionctx/api"
	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/internal/auth"
	"github.com/sessionctx/sessionctx/internal/testenv"
)

// BenchmarkGetMyContext measures the whole read path of GET /me/context in
// process: routing, middleware, token verification, the Redis read (REDIS_URL,
// else what testenv.Redis picks) and the answer's encoding.
func BenchmarkGetMyContext(b *testing.B) {
	r := testenv.Redis(b)
	store := contexts.NewStore(r.Client, contexts.Options{Prefix: r.Prefix})
	v, err := auth.NewVerifier(context.Background(), auth.Config{Secret: secret})
	if err != nil {
		b.Fatal(err)
	}
	tenants := contexts.DefaultTenants()
	tn, err := tenants.Lookup(tenantName)
	if err != nil {
		b.Fatal(err)
	}
	e := api.New(api.Config{
		Store: store, Tenants: tenants, Verifier: v,
		Registry: prometheus.NewRegistry(), StoreTimeout: 2 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	})
	const sid = "bench-session-1"
	ctx := context.Background()
	if _, err := store.Edit(ctx, tn, sid, contexts.Edit{Upsert: &contexts.Upsert{}}); err != nil {
		b.Fatal(err)
	}
	// A typical storefront context: a few scalar fields and attributes.
	edit := contexts.Edit{
		Access: contexts.Access{Kind: contexts.AccessService},
		Set: map[contexts.Field]string{
			contexts.FieldCurrency: "EUR", contexts.FieldLanguage: "de", contexts.FieldTargetLocation: "DE",
			contexts.FieldCartID: "cart-8f2c1e",
		},
		Context: map[string]json.RawMessage{
			"channel":    json.RawMessage(`"web"`),
			"consent":    json.RawMessage(`{"analytics":true,"marketing":false}`),
			"lastViewed": json.RawMessage(`["sku-1","sku-2","sku-3"]`),
			"segment":    json.RawMessage(`"returning"`),
		},
		ReplaceContext: true,
	}
	if _, err := store.Edit(ctx, tn, sid, edit); err != nil {
		b.Fatal(err)
	}
	token := mint(b, secret, auth.TokenSpec{SessionID: sid})
	req := httptest.NewRequest(http.MethodGet, "/session-context/acme/me/context", nil)
	req.Header.Set("Authorization", "Bearer "+token)

	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
	// Many concurrent requests: the Redis round trips overlap and the CPU
	// (2 cores here, shared with Redis) is what limits throughput.
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req.Clone(req.Context()))
				if rec.Code != http.StatusOK {
					b.Errorf("status %d: %s", rec.Code, rec.Body)
					return
				}
			}
		})
	})
}

// reportCPU reports the process's CPU time per operation as cpu-ns/op, a
// steadier measure than ns/op on a shared machine (it leaves out Redis's own
// CPU). Call the function it returns when the timed loop is done.
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() {
		if used := processCPU() - start; used > 0 && b.N > 0 {
			b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}
