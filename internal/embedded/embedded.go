// Package embedded starts in-process servers: a NATS server with JetStream and a
// miniredis stand-in for Redis. The sessionctx binary uses them when no NATS_URL or
// REDIS_URL is configured (the zero-setup mode), and tests use them when no real
// servers are available. They are not meant for production.
package embedded

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/nats-io/nats-server/v2/server"
)

// readyTimeout bounds how long StartNATS waits for the server to accept
// connections when ctx has no earlier deadline.
const readyTimeout = 30 * time.Second

// NATS is an in-process nats-server with JetStream enabled.
type NATS struct {
	srv     *server.Server
	tempDir string // removed by Close; empty when the caller gave the store dir

	closeOnce sync.Once
}

// StartNATS starts an in-process NATS server with JetStream listening on addr
// ("host:port"; empty: a random port of 127.0.0.1), storing its data in
// storeDir, or in a temporary directory that Close removes when storeDir is empty.
// It returns once the server accepts connections. ctx bounds only the start; the
// server runs until Close.
func StartNATS(ctx context.Context, addr, storeDir string) (*NATS, error) {
	host, port, err := splitAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
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
		Host:      host,
		Port:      port,
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

// tickInterval is how often the Redis stand-in's clock and TTLs catch up with the
// wall clock.
const tickInterval = 100 * time.Millisecond

// Redis is an in-process Redis stand-in (miniredis). TIME and (P)EXPIREAT use the wall clock, and key TTLs run down with
// it in steps of 100ms: a key given PEXPIREAT now+300ms is gone within about
// 400ms, where a real Redis would drop it at 300ms.
type Redis struct {
	m    *miniredis.Miniredis
	addr string

	stop      chan struct{} // closed by Close: ends the clock goroutine
	done      chan struct{} // closed by the clock goroutine when it ends
	closeOnce sync.Once
}

// StartRedis starts an in-process Redis stand-in listening on addr
// ("host:port"; empty: a random port of 127.0.0.1). Its TTLs follow the wall clock
// until ctx is done or Close is called; after ctx is done the server still answers,
// but its TTLs stand still, so call Close.
func StartRedis(ctx context.Context, addr string) (*Redis, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded redis: %w", err)
	}
	m := miniredis.NewMiniRedis()
	now := time.Now()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("embedded redis: start: %w", err)
	}
	r := &Redis{m: m, addr: m.Addr(), stop: make(chan struct{}), done: make(chan struct{})}
	go r.followWallClock(ctx, now)
	return r, nil
}

// followWallClock runs miniredis's TTLs down by the wall time elapsed, every
// tickInterval, until ctx is done or Close is called.
//
// miniredis's clock is left unset, so it reads time.Now() whenever it needs the
// time: TIME is exact and PEXPIREAT stores the exact remaining TTL. Setting it
// with SetTime on every tick would freeze it for up to a tick, so that a fresh
// PEXPIREAT now+60s would give a PTTL above 60s. miniredis's ClockTTL mode would
// run TTLs down on every command instead of every tick, but it sorts all keys
// each time, which makes every command O(n log n) in the number of keys.
func (r *Redis) followWallClock(ctx context.Context, last time.Time) {
	defer close(r.done)
	ticker := time.NewTicker(tickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.stop:
			return
		case <-ticker.C:
			now := time.Now()
			r.m.FastForward(now.Sub(last))
			last = now
		}
	}
}

// Addr returns host:port, e.g. 127.0.0.1:40123.
func (r *Redis) Addr() string { return r.addr }

// URL returns a redis:// URL for database 0, e.g. redis://127.0.0.1:40123/0.
func (r *Redis) URL() string { return "redis://" + r.addr + "/0" }

// Close stops the clock goroutine, waits for it to end, and stops the server. It
// may be called more than once.
func (r *Redis) Close() {
	r.closeOnce.Do(func() {
		close(r.stop)
		<-r.done
		r.m.Close()
	})
}

// splitAddr splits "host:port"; empty means 127.0.0.1 and port 0.
func splitAddr(addr string) (string, int, error) {
	if addr == "" {
		return "127.0.0.1", 0, nil
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q is not a number", p)
	}
	return host, port, nil
}
