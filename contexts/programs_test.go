package contexts_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/embedded"
	"github.com/sessionctx/sessionctx/internal/testenv"
)

// hasLibrary tells whether the server holds the store's function library,
// or fails when the server has no functions.
func hasLibrary(ctx context.Context, rdb *redis.Client) (bool, error) {
	libs, err := rdb.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: contexts.LibraryName}).Result()
	return len(libs) == 1, err
}

// TestProgramsSurviveTheirLoss: the store loads its programs as functions
// where Redis has them, and loads them again when Redis has lost them (a
// restart without persistence, FUNCTION DELETE, SCRIPT FLUSH). An API edit
// retries at once; a batch of events fails once and is safe to apply again.
// It runs on servers of its own: losing the library on a shared server
// would fail other tests' events.
func TestProgramsSurviveTheirLoss(t *testing.T) {
	cases := []struct {
		name      string
		redis     func(t *testing.T) *redis.Client
		functions bool
	}{
		{"functions on a redis-server", func(t *testing.T) *redis.Client { return testenv.RedisServer(t).Client }, true},
		{"scripts on the in-process stand-in", func(t *testing.T) *redis.Client {
			r, err := embedded.StartRedis(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(r.Close)
			opts, _ := redis.ParseURL(r.URL())
			c := redis.NewClient(opts)
			t.Cleanup(func() { _ = c.Close() })
			return c
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Now()
			rdb := tc.redis(t)
			s := contexts.NewStore(rdb, contexts.Options{Prefix: "p:", Now: func() time.Time { return now }})
			applyAll(t, s, evAt(events.CartCreated, now, events.Data{SessionID: "s", CartID: "k"}))
			if loaded, err := hasLibrary(ctx, rdb); loaded != tc.functions {
				t.Fatalf("library %s loaded: %v (%v), want %v", contexts.LibraryName, loaded, err, tc.functions)
			}
			lose := func() {
				t.Helper()
				if tc.functions {
					if err := rdb.FunctionDelete(ctx, contexts.LibraryName).Err(); err != nil {
						t.Fatal(err)
					}
				}
				if err := rdb.ScriptFlush(ctx).Err(); err != nil {
					t.Fatal(err)
				}
			}

			lose()
			v := int64(1)
			if _, err := s.Edit(ctx, tenant, "s", contexts.Edit{Version: &v, Set: map[contexts.Field]string{contexts.FieldCurrency: "USD"}}); err != nil {
				t.Fatalf("edit after the programs were lost: %v", err)
			}

			lose()
			refresh := evAt(events.AnonymousLogin, now, events.Data{SessionID: "s"})
			if _, err := s.Apply(ctx, tenant, refresh); err != nil {
				t.Logf("first apply after the loss: %v", err)
				if _, err := s.Apply(ctx, tenant, refresh); err != nil {
					t.Fatalf("second apply after the loss: %v", err)
				}
			}
			got, err := s.Get(ctx, tenant, "s")
			if err != nil || got.Currency != "USD" || got.CartID != "k" {
				t.Fatalf("context after the losses: %+v, %v; want the cart and the edited currency", got, err)
			}
			if again, _ := hasLibrary(ctx, rdb); again != tc.functions {
				t.Errorf("library loaded again: %v, want %v", again, tc.functions)
			}
		})
	}
}
