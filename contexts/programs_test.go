package contexts_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
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
func TestProgramsSurviveTheirLoss(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	s, env := newStore(t, now)
	applyAll(t, s, evAt(events.CartCreated, now, events.Data{SessionID: "s", CartID: "k"}))
	loaded, err := hasLibrary(ctx, env.Client)
	functions := err == nil
	t.Logf("server has functions: %v (%v); library %s loaded: %v", functions, err, contexts.LibraryName, loaded)
	if functions && !loaded {
		t.Fatal("Redis has functions, but the store did not load its library")
	}
	lose := func() {
		t.Helper()
		if functions {
			// Another test process may have deleted it too.
			if err := env.Client.FunctionDelete(ctx, contexts.LibraryName).Err(); err != nil && !strings.Contains(err.Error(), "not found") {
				t.Fatal(err)
			}
		}
		if err := env.Client.ScriptFlush(ctx).Err(); err != nil {
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
	if again, _ := hasLibrary(ctx, env.Client); functions && !again {
		t.Error("the store did not load its library again")
	}
}
