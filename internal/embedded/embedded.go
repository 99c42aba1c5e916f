// Package embedded starts in-process servers: a NATS server with JetStream and a
// miniredis stand-in for Redis. The sessionctx binary uses them when no NATS_URL or
// REDIS_URL is configured (the zero-setup mode), and tests use them when no real
// servers are available. They are not meant for production.
package embedded

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/nats-io/nats-server/v2/server"
)

// readyTimeout bounds how long StartNATS waits for the server to accept
// connections when ctx has no earlier deadline.
const readyTimeout = 30 * time.Second

// NATS is an in-process nats-server with JetStream enabled, listening on a random
// port of 127.0.0.1.
type NATS struct {
	srv     *server.Server
	tempDir string // removed by Close; empty when the caller gave the store dir

	closeOnce sync.Once
}

// StartNATS starts an in-process NATS server with JetStream, storing its data in
// storeDir, or in a temporary directory that Close removes when storeDir is empty.
// It returns once the server accepts connections. ctx bounds only the start; the
// server runs until Close.
func StartNATS(ctx context.Context, storeDir string) (*NATS, error) {
	n := &NATS{}
	if storeDir == "" {
		dir, err := os.MkdirTemp("", "sessionctx-nats-")
		if err != nil {
			return nil, fmt.Errorf("embedded nats: create store dir: %w", err)
		}
		n.tempDir = dir
		storeDir = dir
	}
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  storeDir,
		NoLog:     true,
		NoSigs:    true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		n.removeTempDir()
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	n.srv = srv
	srv.Start()

	deadline := time.Now().Add(readyTimeout)
	for !srv.ReadyForConnections(100 * time.Millisecond) {
		if err := ctx.Err(); err != nil {
			n.Close()
			return nil, fmt.Errorf("embedded nats: not ready: %w", err)
		}
		if time.Now().After(deadline) {
			n.Close()
			return nil, fmt.Errorf("embedded nats: not ready after %s", readyTimeout)
		}
	}
	return n, nil
}

// URL returns the client URL, e.g. nats://127.0.0.1:40123.
func (n *NATS) URL() string { return n.srv.ClientURL() }

// Close shuts the server down, waits until it has stopped and removes the store
// directory if StartNATS created it. It may be called more than once.
func (n *NATS) Close() {
	n.closeOnce.Do(func() {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.removeTempDir()
	})
}

func (n *NATS) removeTempDir() {
	if n.tempDir != "" {
		_ = os.RemoveAll(n.tempDir)
	}
}

// Redis is an in-process Redis stand-in (miniredis) listening on a random port of
// 127.0.0.1. Its clock is the wall clock and key TTLs run down with it, as in a real
// Redis: a key given PEXPIREAT now+300ms is gone 300ms later.
type Redis struct {
	m    *miniredis.Miniredis
	addr string
}

// StartRedis starts an in-process Redis stand-in. ctx bounds only the start; the
// server runs until Close.
func StartRedis(ctx context.Context) (*Redis, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded redis: %w", err)
	}
	m := miniredis.NewMiniRedis()
	// miniredis only decreases TTLs on FastForward unless ClockTTL is on. With it
	// on and no SetTime, TIME and (P)EXPIREAT use time.Now() and every command first
	// advances all TTLs by the wall time elapsed since the previous one, so expiry
	// follows the wall clock exactly (lazily, at the next access, which is all a
	// client can observe).
	m.ClockTTL(true)
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("embedded redis: start: %w", err)
	}
	return &Redis{m: m, addr: m.Addr()}, nil
}

// Addr returns host:port, e.g. 127.0.0.1:40123.
func (r *Redis) Addr() string { return r.addr }

// URL returns a redis:// URL for database 0, e.g. redis://127.0.0.1:40123/0.
func (r *Redis) URL() string { return "redis://" + r.addr + "/0" }

// Close stops the server. It may be called more than once.
func (r *Redis) Close() { r.m.Close() }
