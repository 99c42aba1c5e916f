package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/sessionctx/sessionctx/api"
	"github.com/sessionctx/sessionctx/consumer"
	"github.com/sessionctx/sessionctx/internal/auth"
)

func serveCommand(cfg *config, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the worker and the HTTP API (the default command)",
		Long: "Runs the event worker and the HTTP API, or one of them (SESSIONCTX_ROLE).\n" +
			"Without NATS_URL and REDIS_URL it starts an embedded NATS server and an in-process Redis stand-in.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.validate(); err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, cfg.logger(stderr))
		},
	}
}

// serve runs until ctx is cancelled, then shuts down gracefully: the HTTP
// server stops accepting and finishes its requests, the worker finishes the
// messages it holds, then connections close.
func serve(ctx context.Context, cfg *config, log *slog.Logger) error {
	svc, err := connect(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer svc.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	handler, err := httpHandler(ctx, cfg, svc, reg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	log.Info("sessionctx serving", "role", cfg.Role, "http", ln.Addr().String(), "stream", svc.streams.Stream)

	errs := make(chan error, 2)
	running := 1
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("http server: %w", err)
			return
		}
		errs <- nil
	}()
	workerCtx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	if cfg.Role != "api" {
		running++
		w := consumer.New(consumer.Config{
			JS: svc.js, Streams: svc.streams, Store: svc.store, Tenants: svc.tenants, Logger: log,
			Concurrency: cfg.Concurrency, BatchSize: cfg.BatchSize, ShutdownTimeout: cfg.ShutdownTimeout, Metrics: consumer.NewMetrics(reg),
		})
		go func() { errs <- w.Run(workerCtx) }()
	}

	var first error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case first = <-errs:
		running--
	}
	stopWorker()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	for ; running > 0; running-- {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	log.Info("stopped")
	return first
}

// httpHandler is the API for roles all and api; the worker role serves only
// health, readiness and metrics.
func httpHandler(ctx context.Context, cfg *config, svc *services, reg *prometheus.Registry, log *slog.Logger) (http.Handler, error) {
	if cfg.Role == "worker" {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
			if err := svc.ready(r.Context()); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok\n")
		})
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		return mux, nil
	}
	secret := cfg.jwtSecret()
	if secret == developmentSecret {
		log.Warn("no SESSIONCTX_JWT_SECRET or SESSIONCTX_JWKS: verifying tokens with the DEVELOPMENT secret; mint tokens with `sessionctx token`")
	}
	verifier, err := auth.NewVerifier(ctx, auth.Config{Secret: []byte(secret), JWKS: cfg.JWKS, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
	if err != nil {
		return nil, err
	}
	saas := verifier
	if cfg.SaasSecret != "" {
		if saas, err = auth.NewVerifier(ctx, auth.Config{Secret: []byte(cfg.SaasSecret)}); err != nil {
			return nil, err
		}
	}
	return api.New(api.Config{
		Store: svc.store, Tenants: svc.tenants, Verifier: verifier, SaasVerifier: saas,
		Ready: svc.ready, Logger: log, Registry: reg, Gatherer: reg,
	}), nil
}
