package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/testenv"
)

// freeAddr returns a loopback address that nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for the logger and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// service runs `sessionctx` with env until the test ends, and checks that it
// shuts down cleanly when its context is cancelled.
func service(t *testing.T, env map[string]string, args ...string) (httpBase string, logs *syncBuffer) {
	t.Helper()
	addr := freeAddr(t)
	env["SESSIONCTX_HTTP_ADDR"] = addr
	logs = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v after shutdown", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("run did not return within 30s of shutdown; logs:\n%s", logs)
		}
	})
	base := "http://" + addr
	waitFor(t, 20*time.Second, func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, logs)
		default:
		}
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return base, logs
}

func waitFor(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s: %s", timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getContext(t *testing.T, base, token, tenant string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, base+"/session-context/"+tenant+"/me/context", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func mint(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), append([]string{"token"}, args...), func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatalf("token: %v", err)
	}
	return strings.TrimSpace(out.String())
}

func publishCart(t *testing.T, js jetstream.JetStream, prefix, sid string) {
	t.Helper()
	pub := events.Publisher{JS: js, SubjectPrefix: prefix}
	e := events.New(events.CartCreated, "acme", "test", events.Data{SessionID: sid, CartID: "cart-" + sid})
	waitFor(t, 10*time.Second, func() (bool, string) { // the worker creates the stream when it starts
		_, err := pub.Publish(context.Background(), e)
		return err == nil, fmt.Sprint(err)
	})
}

// TestZeroSetup runs the service as `go run ./cmd/sessionctx` would on a
// machine with no servers: embedded NATS and Redis stand-in, development
// secret. A published cart.created becomes a readable context.
func TestZeroSetup(t *testing.T) {
	env := map[string]string{
		"SESSIONCTX_EMBEDDED_NATS_ADDR":  freeAddr(t),
		"SESSIONCTX_EMBEDDED_REDIS_ADDR": freeAddr(t),
		"SESSIONCTX_DATA_DIR":            t.TempDir(),
	}
	base, logs := service(t, env)
	if !strings.Contains(logs.String(), "EMBEDDED NATS") || !strings.Contains(logs.String(), "IN-PROCESS Redis") {
		t.Errorf("the embedded mode is not announced loudly; logs:\n%s", logs)
	}
	nc, err := nats.Connect("nats://" + env["SESSIONCTX_EMBEDDED_NATS_ADDR"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	publishCart(t, js, "", "s-zero")
	token := mint(t, map[string]string{}, "--tenant", "acme", "--session", "s-zero")
	waitFor(t, 10*time.Second, func() (bool, string) {
		code, body := getContext(t, base, token, "acme")
		return code == 200 && strings.Contains(body, `"cartId":"cart-s-zero"`), fmt.Sprint(code, body)
	})
}

// TestServeWithServers runs the service against the configured Redis and
// NATS, and a worker-only replica beside it.
// TestServeWithServers runs an api and a worker replica against real
// servers: one Redis, and a Redis Cluster.
func TestServeWithServers(t *testing.T) {
	cases := []struct {
		name  string
		redis func(t *testing.T) (url, prefix, mode string)
	}{
		{"one redis", func(t *testing.T) (string, string, string) {
			r := testenv.Redis(t)
			return r.URL, r.Prefix, "single"
		}},
		{"redis cluster", func(t *testing.T) (string, string, string) {
			r := testenv.RedisCluster(t)
			return r.URL, r.Prefix, "cluster"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			redisURL, prefix, mode := tc.redis(t)
			n := testenv.NATS(t)
			env := map[string]string{
				"REDIS_URL": redisURL, "SESSIONCTX_REDIS_MODE": mode, "NATS_URL": n.URL, "SESSIONCTX_JWT_SECRET": "test-secret",
				"SESSIONCTX_STREAM": n.Stream, "SESSIONCTX_SUBJECT_PREFIX": n.SubjectPrefix, "SESSIONCTX_KEY_PREFIX": prefix,
			}
			base, _ := service(t, env, "serve", "--role", "api")
			workerEnv := maps.Clone(env)
			workerEnv["SESSIONCTX_ROLE"] = "worker"
			service(t, workerEnv)
			publishCart(t, n.JS, n.SubjectPrefix, "s-real")
			token := mint(t, env, "--tenant", "acme", "--session", "s-real")
			waitFor(t, 10*time.Second, func() (bool, string) {
				code, body := getContext(t, base, token, "acme")
				return code == 200 && strings.Contains(body, `"cartId":"cart-s-real"`), fmt.Sprint(code, body)
			})
			if code, _ := getContext(t, base, mint(t, map[string]string{}, "--tenant", "acme", "--session", "s-real"), "acme"); code != 401 {
				t.Errorf("a token signed with the development secret got %d from a service with a configured secret, want 401", code)
			}
			// A rebuild refuses a target that holds contexts, on every node.
			err := run(context.Background(), []string{"replay", "--rebuild"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "already holds contexts") {
				t.Errorf("replay --rebuild into the live Redis: %v, want a refusal", err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"bad role", map[string]string{"SESSIONCTX_ROLE": "both"}, nil, "SESSIONCTX_ROLE"},
		{"bad redis mode", map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "SESSIONCTX_REDIS_MODE": "ring", "SESSIONCTX_JWT_SECRET": "s"}, nil, "SESSIONCTX_REDIS_MODE"},
		{"cluster without a URL", map[string]string{"SESSIONCTX_REDIS_MODE": "cluster"}, nil, "needs REDIS_URL"},
		{"secret required with real servers", map[string]string{"NATS_URL": "nats://127.0.0.1:1", "REDIS_URL": "redis://127.0.0.1:1"}, nil, "SESSIONCTX_JWT_SECRET or SESSIONCTX_JWKS is required"},
		{"bad duration", map[string]string{"SESSIONCTX_RETENTION": "a day"}, nil, "SESSIONCTX_RETENTION"},
		{"bad log level", nil, []string{"--log-level", "loud"}, "SESSIONCTX_LOG_LEVEL"},
		{"unreachable redis", map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "SESSIONCTX_JWT_SECRET": "s", "SESSIONCTX_EMBEDDED_NATS_ADDR": "127.0.0.1:0"}, nil, "does not answer"},
		{"no development secret with a real Redis", map[string]string{"REDIS_URL": "redis://127.0.0.1:1"}, nil, "SESSIONCTX_JWT_SECRET or SESSIONCTX_JWKS is required"},
		{"unknown flag", nil, []string{"--nope"}, "unknown flag"},
		{"token without tenant", nil, []string{"token", "--session", "s"}, "--tenant is required"},
		{"publish of an unknown type", nil, []string{"publish", "cart.deleted", "--tenant", "acme", "--data", "{}"}, "not an event type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
