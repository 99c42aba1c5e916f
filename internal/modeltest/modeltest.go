// Package modeltest checks stored sessions against the reference model, for
// the tests of the store, the worker and replay.
package modeltest

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/histories"
)

// Seed returns SESSIONCTX_SEED when set, else a fresh seed, and logs it so
// that a failure can be reproduced.
func Seed(t testing.TB) uint64 {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("SESSIONCTX_SEED"); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("SESSIONCTX_SEED: %v", err)
		}
	}
	t.Logf("seed %d (rerun with SESSIONCTX_SEED=%d)", s, s)
	return s
}

// Inspector reads a session's outcome; *contexts.Store has it.
type Inspector interface {
	Inspect(ctx context.Context, t contexts.Tenant, sessionID string) (contexts.Outcome, error)
}

// Compare checks every session of evs in the store against contexts.Fold
// and fails the test with the first differences. It returns how many
// sessions it compared.
func Compare(t testing.TB, store Inspector, tenant contexts.Tenant, evs []events.Event) int {
	t.Helper()
	sessions := histories.SessionIDs(evs)
	mismatches := 0
	for _, sid := range sessions {
		got, err := store.Inspect(context.Background(), tenant, sid)
		if err != nil {
			t.Fatal(err)
		}
		if want := contexts.Fold(tenant, sid, evs); got != want {
			if mismatches++; mismatches <= 5 {
				t.Errorf("session %s:\n store %+v\n model %+v", sid, got, want)
			}
		}
	}
	if mismatches > 0 {
		t.Fatalf("%d of %d sessions differ from the reference model", mismatches, len(sessions))
	}
	return len(sessions)
}
