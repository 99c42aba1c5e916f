// Package api serves the session-context HTTP API, wire-compatible with the
// Emporix Session Context Service, plus /healthz, /readyz, /metrics and the
// service's own OpenAPI document (/openapi.yaml).
package api

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/internal/auth"
)

// OpenAPI is the service's own OpenAPI document, served at /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Store is what the API needs of the context store; *contexts.Store has it.
type Store interface {
	// Get returns the visible context of a session or contexts.ErrNotFound.
	Get(ctx context.Context, t contexts.Tenant, sessionID string) (contexts.Session, error)
	// Edit applies an edit atomically (see contexts.Store.Edit for errors).
	Edit(ctx context.Context, t contexts.Tenant, sessionID string, e contexts.Edit) (int64, error)
	// Ping checks that the store's Redis answers.
	Ping(ctx context.Context) error
}

// Tenants looks up a tenant's configuration; contexts.Tenants has it.
type Tenants interface {
	Lookup(name string) (contexts.Tenant, error)
}

// TokenVerifier checks a bearer token; *auth.Verifier has it.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (auth.Claims, error)
}

// Limits bound what a request may carry. Zero fields take the defaults.
type Limits struct {
	// MaxKeyLen is the longest attribute name, in characters (default 128).
	MaxKeyLen int
	// MaxValueBytes is the largest attribute value, as compact JSON (default 16 KiB).
	MaxValueBytes int
	// MaxBodyBytes is the largest request body (default 256 KiB); larger
	// bodies answer 413.
	MaxBodyBytes int64
}

// DefaultLimits are the limits of the contract.
var DefaultLimits = Limits{MaxKeyLen: 128, MaxValueBytes: 16 << 10, MaxBodyBytes: 256 << 10}

// Config wires the API. Store, Tenants and Verifier are required.
type Config struct {
	// Store holds the session contexts.
	Store Store
	// Tenants gives each tenant's default site and lifetimes.
	Tenants Tenants
	// Verifier checks the Authorization bearer tokens (shopper and service).
	Verifier TokenVerifier
	// SaasVerifier checks saas-token headers; Verifier when nil.
	SaasVerifier TokenVerifier
	// Limits bound requests; DefaultLimits for zero fields.
	Limits Limits
	// Ready reports whether the dependencies (Redis, NATS) are reachable, for
	// /readyz; Store.Ping when nil.
	Ready func(ctx context.Context) error
	// StoreTimeout bounds each store call of a request (default 5 s).
	StoreTimeout time.Duration
	// Logger receives one line per request (debug for success, info for
	// client errors, error for server errors); slog.Default() when nil.
	Logger *slog.Logger
	// Registry receives the HTTP metrics; a new registry when nil.
	Registry prometheus.Registerer
	// Gatherer is served at /metrics; Registry when it is a Gatherer (as
	// *prometheus.Registry is), else prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
}

// retryAfterSeconds is the Retry-After of 503 answers.
const retryAfterSeconds = "5"

// server holds the configured API.
type server struct {
	store    Store
	tenants  Tenants
	verifier TokenVerifier
	saas     TokenVerifier
	limits   Limits
	ready    func(context.Context) error
	timeout  time.Duration
	log      *slog.Logger
	metrics  *metrics
	routes   map[string]bool // route templates, for metric labels
}

// Route templates (Echo syntax) of the session-context API.
const (
	routeContext         = "/session-context/:tenant/context/:sessionId"
	routeAttributes      = "/session-context/:tenant/context/:sessionId/attributes"
	routeAttribute       = "/session-context/:tenant/context/:sessionId/attributes/:attributeName"
	routeMeContext       = "/session-context/:tenant/me/context"
	routeMeAttributes    = "/session-context/:tenant/me/context/attributes"
	routeMeAttribute     = "/session-context/:tenant/me/context/attributes/:attributeName"
	routeHealth          = "/healthz"
	routeReady           = "/readyz"
	routeMetrics         = "/metrics"
	routeOpenAPI         = "/openapi.yaml"
	routeUnmatchedMetric = "unmatched"
)

// New returns the API as an Echo instance, ready to be served by an
// http.Server. It starts nothing. It panics when Store, Tenants or Verifier
// is nil.
func New(cfg Config) *echo.Echo {
	if cfg.Store == nil || cfg.Tenants == nil || cfg.Verifier == nil {
		panic("api.New: Config.Store, Config.Tenants and Config.Verifier are required")
	}
	s := &server{
		store: cfg.Store, tenants: cfg.Tenants, verifier: cfg.Verifier, saas: cfg.SaasVerifier,
		limits: cfg.Limits, ready: cfg.Ready, timeout: cfg.StoreTimeout, log: cfg.Logger,
		routes: map[string]bool{},
	}
	if s.saas == nil {
		s.saas = s.verifier
	}
	if s.limits.MaxKeyLen <= 0 {
		s.limits.MaxKeyLen = DefaultLimits.MaxKeyLen
	}
	if s.limits.MaxValueBytes <= 0 {
		s.limits.MaxValueBytes = DefaultLimits.MaxValueBytes
	}
	if s.limits.MaxBodyBytes <= 0 {
		s.limits.MaxBodyBytes = DefaultLimits.MaxBodyBytes
	}
	if s.ready == nil {
		s.ready = s.store.Ping
	}
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	reg, gath := cfg.Registry, cfg.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg = r
		if gath == nil {
			gath = r
		}
	}
	if gath == nil {
		if g, ok := reg.(prometheus.Gatherer); ok {
			gath = g
		} else {
			gath = prometheus.DefaultGatherer
		}
	}
	s.metrics = newMetrics(reg)

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.Use(s.observe)

	add := func(method, path string, h echo.HandlerFunc) {
		s.routes[path] = true
		e.Add(method, path, h)
	}
	add(http.MethodGet, routeContext, s.getContext)
	add(http.MethodPut, routeContext, s.putContext)
	add(http.MethodPost, routeAttributes, s.postAttribute)
	add(http.MethodDelete, routeAttribute, s.deleteAttribute)
	add(http.MethodGet, routeMeContext, s.getMyContext)
	add(http.MethodPatch, routeMeContext, s.patchMyContext)
	add(http.MethodPost, routeMeAttributes, s.postMyAttribute)
	add(http.MethodDelete, routeMeAttribute, s.deleteMyAttribute)

	add(http.MethodGet, routeHealth, func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	add(http.MethodGet, routeReady, s.readyz)
	add(http.MethodGet, routeMetrics, echo.WrapHandler(promhttp.HandlerFor(gath, promhttp.HandlerOpts{})))
	add(http.MethodGet, routeOpenAPI, func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", OpenAPI)
	})
	return e
}

func (s *server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.timeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return &httpError{Status: http.StatusServiceUnavailable, Message: "not ready: " + err.Error(), Err: err}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// storeCtx bounds a store call.
func (s *server) storeCtx(c echo.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request().Context(), s.timeout)
}
