package main

import (
	"cmp"
	"io"

	"context"
	"errors"
	"fmt"
	"github.com/spf13/cobra"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/sessionctx/sessionctx/consumer"
	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/internal/embedded"
)

// services are the connections every command works with.
type services struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	rdb     redis.UniversalClient
	store   *contexts.Store
	tenants contexts.Tenants
	streams consumer.Streams
	closers []func()
}

// Close closes the connections and stops embedded servers, newest first.
func (s *services) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// ready checks that Redis and NATS answer.
func (s *services) ready(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return err
	}
	if st := s.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("nats is %s", st)
	}
	return nil
}

// connect opens Redis and NATS as configured. What is not configured is
// the embedded servers: started here when start is set (serve), else those
// of a running `sessionctx serve`, at their listen addresses.
func connect(ctx context.Context, cfg *config, log *slog.Logger, start bool) (_ *services, err error) {
	// Redis settings are checked before any embedded server starts.
	switch {
	case cfg.RedisMode != "single" && cfg.RedisMode != "cluster":
		return nil, fmt.Errorf("SESSIONCTX_REDIS_MODE: %q is neither single nor cluster", cfg.RedisMode)
	case cfg.RedisURL == "" && cfg.RedisMode == "cluster":
		return nil, errors.New("SESSIONCTX_REDIS_MODE=cluster needs REDIS_URL: the in-process stand-in is no cluster")
	}
	s := &services{streams: consumer.Streams{Stream: cfg.Stream, SubjectPrefix: cfg.SubjectPrefix,
		Replicas: cfg.StreamReplicas, MaxAge: cfg.StreamMaxAge, MaxAckPending: cfg.MaxAckPending}.Defaults()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if cfg.TenantsFile != "" {
		if s.tenants, err = contexts.LoadTenants(cfg.TenantsFile); err != nil {
			return nil, err
		}
	} else {
		s.tenants = contexts.DefaultTenants()
	}

	natsURL, redisURL := cfg.NATSURL, cfg.RedisURL
	switch {
	case natsURL == "" && !start:
		natsURL = "nats://" + cfg.EmbeddedNATS
	case natsURL == "":
		dir := cfg.DataDir
		n, err := embedded.StartNATS(ctx, cfg.EmbeddedNATS, dir)
		if err != nil {
			return nil, fmt.Errorf("start embedded NATS: %w", err)
		}
		s.closers = append(s.closers, n.Close)
		natsURL = n.URL()
		log.Warn("NATS_URL is not set: running an EMBEDDED NATS server with JetStream, for trying sessionctx out, not for production",
			"url", natsURL, "data_dir", cmp.Or(dir, "temporary, removed at exit"))
	}
	switch {
	case redisURL == "" && !start:
		redisURL = "redis://" + cfg.EmbeddedRedis
	case redisURL == "":
		r, err := embedded.StartRedis(ctx, cfg.EmbeddedRedis)
		if err != nil {
			return nil, fmt.Errorf("start in-process Redis: %w", err)
		}
		s.closers = append(s.closers, r.Close)
		redisURL = r.URL()
		log.Warn("REDIS_URL is not set: running an IN-PROCESS Redis stand-in that keeps nothing after exit, for trying sessionctx out, not for production",
			"url", redisURL)
	}

	rdb, err := newRedisClient(cfg.RedisMode, redisURL)
	if err != nil {
		return nil, err
	}
	s.rdb = rdb
	s.closers = append(s.closers, func() { _ = rdb.Close() })
	s.store = contexts.NewStore(rdb, contexts.Options{Prefix: cfg.KeyPrefix, Retention: cfg.Retention})
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.store.Ping(pingCtx); err != nil {
		return nil, fmt.Errorf("redis at %s does not answer: %w", redactURL(redisURL), err)
	}

	nc, err := nats.Connect(natsURL, nats.Name("sessionctx"), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.Timeout(5*time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("nats disconnected", "err", err) }),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }))
	if err != nil {
		return nil, fmt.Errorf("nats at %s does not answer: %w", redactURL(natsURL), err)
	}
	s.nc = nc
	s.closers = append(s.closers, func() { _ = nc.Drain() })
	if s.js, err = jetstream.New(nc); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if _, err := s.js.AccountInfo(pingCtx); err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return nil, fmt.Errorf("nats at %s has no JetStream: start nats-server with -js", redactURL(natsURL))
		}
		return nil, fmt.Errorf("jetstream at %s: %w", redactURL(natsURL), err)
	}
	return s, nil
}

// redactURL hides a password in a server URL.
func redactURL(u string) string {
	if at := strings.LastIndex(u, "@"); at >= 0 {
		if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
			return u[:scheme+3] + "***" + u[at:]
		}
	}
	return u
}

// withServices connects as the operator commands do (to the embedded
// servers of a running `sessionctx` when no URL is set), runs f and closes.
func withServices(cmd *cobra.Command, cfg *config, stderr io.Writer, f func(*services) error) error {
	svc, err := connect(cmd.Context(), cfg, cfg.logger(stderr), false)
	if err != nil {
		return err
	}
	defer svc.Close()
	return f(svc)
}

// newRedisClient connects to one Redis, or in mode "cluster" to a Redis
// Cluster whose nodes the URL names.
func newRedisClient(mode, url string) (redis.UniversalClient, error) {
	if mode == "cluster" {
		opts, err := redis.ParseClusterURL(url)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		return redis.NewClusterClient(opts), nil
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	return redis.NewClient(opts), nil
}
