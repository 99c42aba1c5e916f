package api

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/internal/auth"
)

// count is the value of sessionctx_http_requests_total for the labels.
func count(t *testing.T, reg *prometheus.Registry, method, code string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "sessionctx_http_requests_total" {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if (l.GetName() == "method" && l.GetValue() != method) || (l.GetName() == "code" && l.GetValue() != code) {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestMetricsObserveCachesChildren(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	for range 3 {
		m.observe(http.MethodGet, routeMeContext, http.StatusOK, time.Millisecond)
	}
	m.observe(http.MethodGet, routeMeContext, http.StatusNotFound, time.Millisecond)
	if got := count(t, reg, http.MethodGet, "200"); got != 3 {
		t.Errorf("200 count %v, want 3", got)
	}
	if got := count(t, reg, http.MethodGet, "404"); got != 1 {
		t.Errorf("404 count %v, want 1", got)
	}
	// Made-up methods share one label value, past the cache's bound too.
	for i := range maxCachedChildren + 10 {
		m.observe(fmt.Sprintf("M%d", i), routeUnmatchedMetric, http.StatusMethodNotAllowed, time.Millisecond)
		m.observe(fmt.Sprintf("M%d", i), routeUnmatchedMetric, http.StatusMethodNotAllowed, time.Millisecond)
	}
	if n := m.cached.Load(); n > maxCachedChildren {
		t.Errorf("%d cached label sets, want at most %d", n, maxCachedChildren)
	}
	if got := count(t, reg, "other", "405"); got != 2*(maxCachedChildren+10) {
		t.Errorf("made-up methods counted %v times as other, want %d", got, 2*(maxCachedChildren+10))
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if got := len(f.GetMetric()); got != 3 {
			t.Errorf("%s: %d label sets, want 3", f.GetName(), got)
		}
	}
}

type missingStore struct{}

func (missingStore) Get(context.Context, contexts.Tenant, string) (contexts.Session, error) {
	return contexts.Session{}, contexts.ErrNotFound
}

func (missingStore) Edit(context.Context, contexts.Tenant, string, contexts.Edit) (int64, error) {
	return 0, contexts.ErrNotFound
}

func (missingStore) Ping(context.Context) error { return nil }

// TestRequestLogLevels: successes are logged at debug, client errors at
// info with the error, and a logger's level decides what it gets.
func TestRequestLogLevels(t *testing.T) {
	v, err := auth.NewVerifier(context.Background(), auth.Config{Secret: []byte("metrics-test-secret")})
	if err != nil {
		t.Fatal(err)
	}
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelError} {
		var buf bytes.Buffer
		e := New(Config{Store: missingStore{}, Tenants: contexts.DefaultTenants(), Verifier: v,
			Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))})
		for _, path := range []string{"/healthz", "/session-context/acme/context/s1"} {
			e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
		}
		out := buf.String()
		debugLine := strings.Contains(out, `level=DEBUG msg="http request" method=GET path=/healthz route=/healthz status=200`)
		infoLine := strings.Contains(out, `level=INFO msg="http request" method=GET path=/session-context/acme/context/s1 route=/session-context/:tenant/context/:sessionId status=401`) &&
			strings.Contains(out, `err="401 the Authorization header with a bearer token is required"`)
		if debugLine != (level <= slog.LevelDebug) || infoLine != (level <= slog.LevelInfo) {
			t.Errorf("logger at %v wrote:\n%s", level, out)
		}
	}
}
