package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the HTTP metrics, labelled by method, route template and
// status code.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
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
			code := strconv.Itoa(status)
			elapsed := time.Since(start)
			s.metrics.requests.WithLabelValues(req.Method, route, code).Inc()
			s.metrics.latency.WithLabelValues(req.Method, route, code).Observe(elapsed.Seconds())

			level := slog.LevelDebug
			attrs := []any{"method", req.Method, "path", req.URL.Path, "route", route, "status", status, "duration", elapsed}
			switch {
			case status >= http.StatusInternalServerError:
				level = slog.LevelError
				if e, ok := c.Get(errorLogKey).(error); ok {
					attrs = append(attrs, "err", e)
				} else if err != nil {
					attrs = append(attrs, "err", err)
				}
			case status >= http.StatusBadRequest:
				level = slog.LevelInfo
				if err != nil {
					attrs = append(attrs, "err", err)
				}
			}
			s.log.Log(req.Context(), level, "http request", attrs...)
			err = nil
		}()
		return next(c)
	}
}
