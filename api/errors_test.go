package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/internal/auth"
)

// replyError is an error reply of Redis, as go-redis returns it.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		name   string
		err    error
		status int
		server bool
	}{
		{"handler decision", badRequest("x must be y"), 400, false},
		{"token", fmt.Errorf("%w: expired", auth.ErrInvalidToken), 401, false},
		{"not found", fmt.Errorf("%w: s1", contexts.ErrNotFound), 404, false},
		{"no attribute", fmt.Errorf("%w: k", contexts.ErrNoAttribute), 404, false},
		{"unknown tenant", fmt.Errorf("%w: x", contexts.ErrUnknownTenant), 404, false},
		{"conflict", &contexts.VersionConflictError{Current: 4}, 409, false},
		{"ended", fmt.Errorf("%w: s1", contexts.ErrEnded), 409, false},
		{"limit", fmt.Errorf("%w: a context holds at most 100 attributes", contexts.ErrLimit), 400, false},
		{"body too large", fmt.Errorf("read: %w", &http.MaxBytesError{Limit: 10}), 413, false},
		{"echo 404", echo.ErrNotFound, 404, false},
		{"echo 405", echo.ErrMethodNotAllowed, 405, false},
		{"connection refused", fmt.Errorf("edit: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), 503, true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), 503, true},
		{"EOF", fmt.Errorf("read: %w", io.EOF), 503, true},
		{"timeout", fmt.Errorf("read: %w", context.DeadlineExceeded), 503, true},
		{"pool timeout", redis.ErrPoolTimeout, 503, true},
		{"client closed", redis.ErrClosed, 503, true},
		{"loading", fmt.Errorf("edit: %w", replyError("LOADING Redis is loading the dataset in memory")), 503, true},
		{"read only replica", fmt.Errorf("edit: %w", replyError("READONLY You can't write against a read only replica.")), 503, true},
		{"script error", fmt.Errorf("edit: %w", replyError("ERR user_script:1: boom")), 500, true},
		{"anything else", errors.New("boom"), 500, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, server := classify(tt.err)
			if body.Code != tt.status || server != tt.server {
				t.Errorf("classify = %d (server side %v), want %d (%v)", body.Code, server, tt.status, tt.server)
			}
			if body.Message == "" {
				t.Error("empty message")
			}
		})
	}
	body, _ := classify(fmt.Errorf("edit session s1: %w", fmt.Errorf("%w: a context holds at most 100 attributes", contexts.ErrLimit)))
	if body.Message != "limit exceeded: a context holds at most 100 attributes" {
		t.Errorf("limit message %q", body.Message)
	}
}

// brokenStore fails in ways a client did not cause.
type brokenStore struct{ panics bool }

func (b brokenStore) Get(context.Context, contexts.Tenant, string) (contexts.Session, error) {
	if b.panics {
		panic("store exploded")
	}
	return contexts.Session{}, errors.New("secret internals: lua stack at line 42")
}

func (b brokenStore) Edit(context.Context, contexts.Tenant, string, contexts.Edit) (int64, error) {
	return 0, errors.New("secret internals")
}

func (b brokenStore) Ping(context.Context) error { return nil }

type allowAll struct{}

func (allowAll) Verify(context.Context, string) (auth.Claims, error) {
	return auth.Claims{Tenant: "acme", SessionID: "s1", Scopes: []string{auth.ScopeManage}}, nil
}

// TestServerErrors: server faults answer 500 with a generic message: no
// internals, no stack trace; the log has the cause.
func TestServerErrors(t *testing.T) {
	for _, panics := range []bool{false, true} {
		var log strings.Builder
		e := New(Config{
			Store: brokenStore{panics: panics}, Tenants: contexts.DefaultTenants(), Verifier: allowAll{},
			Logger: slog.New(slog.NewTextHandler(&log, nil)),
		})
		req := httptest.NewRequest(http.MethodGet, "/session-context/acme/context/s1", nil)
		req.Header.Set("Authorization", "Bearer x")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if rec.Code != 500 || rec.Body.String() != `{"code":500,"message":"internal error"}`+"\n" {
			t.Errorf("panics=%v: %d %q", panics, rec.Code, rec.Body)
		}
		want := "secret internals"
		if panics {
			want = "store exploded"
		}
		if !strings.Contains(log.String(), want) || !strings.Contains(log.String(), "level=ERROR") {
			t.Errorf("panics=%v: log lacks the cause: %s", panics, log.String())
		}
	}
}
