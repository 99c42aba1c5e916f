package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the HTTP metrics, labelled by method, route template and
// status code.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// children caches each label set's counter and histogram, so that a
	// request does not hash its labels and look them up in both vectors.
	children sync.Map // metricLabels -> *metricChildren
	// cached counts the entries of children, which stops growing at
	// maxCachedChildren (methods are the client's choice).
	cached atomic.Int64
}

type metricLabels struct {
	method, route string
	code          int
}

type metricChildren struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

// maxCachedChildren bounds metrics.children.
const maxCachedChildren = 1024

// metricMethod is the method label: the standard methods by name, any
// other "other", so that clients cannot make up label values.
func metricMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

// observe counts a request and records its duration.
func (m *metrics) observe(method, route string, code int, elapsed time.Duration) {
	method = metricMethod(method)
	key := metricLabels{method, route, code}
	var ch *metricChildren
	if v, ok := m.children.Load(key); ok {
		ch = v.(*metricChildren)
	} else {
		codeLabel := strconv.Itoa(code)
		ch = &metricChildren{
			requests: m.requests.WithLabelValues(method, route, codeLabel),
			latency:  m.latency.WithLabelValues(method, route, codeLabel),
		}
		if m.cached.Load() < maxCachedChildren {
			if _, loaded := m.children.LoadOrStore(key, ch); !loaded {
				m.cached.Add(1)
			}
		}
	}
	ch.requests.Inc()
	ch.latency.Observe(elapsed.Seconds())
}

func newMetrics(reg prometheus.Registerer) *metrics {
	labels := []string{"method", "route", "code"}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessionctx_http_requests_total",
			Help: "HTTP requests answered, by method, route template and status code.",
		}, labels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sessionctx_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by method, route template and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, labels),
	}
	m.requests = register(reg, m.requests)
	m.latency = register(reg, m.latency)
	return m
}

// register registers c, or returns the collector already registered under
// its name (so that several APIs can share a registry, as tests do).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("api: register metrics: %v", err))
	}
	return c
}

// observe is the outermost middleware: it turns panics into 500 answers,
// writes error answers, records metrics and logs the request.
func (s *server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("panic in handler", "panic", r, "stack", string(debug.Stack()))
				err = fmt.Errorf("panic: %v", r)
			}
			if err != nil {
				c.Error(err)
			}
			route := c.Path()
			if !s.routes[route] {
				route = routeUnmatchedMetric
			}
			req, status := c.Request(), c.Response().Status
			elapsed := time.Since(start)
			s.metrics.observe(req.Method, route, status, elapsed)

			level := slog.LevelDebug
			switch {
			case status >= http.StatusInternalServerError:
				level = slog.LevelError
			case status >= http.StatusBadRequest:
				level = slog.LevelInfo
			}
			if s.log.Enabled(req.Context(), level) {
				s.logRequest(c, level, route, elapsed, err)
			}
			err = nil
		}()
		return next(c)
	}
}

// logRequest writes a request's log line: with the error for a client's
// mistake, with the server-side cause for a server error.
func (s *server) logRequest(c echo.Context, level slog.Level, route string, elapsed time.Duration, err error) {
	req, status := c.Request(), c.Response().Status
	attrs := []any{"method", req.Method, "path", req.URL.Path, "route", route, "status", status, "duration", elapsed}
	switch {
	case status >= http.StatusInternalServerError:
		if e, ok := c.Get(errorLogKey).(error); ok {
			attrs = append(attrs, "err", e)
		} else if err != nil {
			attrs = append(attrs, "err", err)
		}
	case status >= http.StatusBadRequest:
		if err != nil {
			attrs = append(attrs, "err", err)
		}
	}
	s.log.Log(req.Context(), level, "http request", attrs...)
}
