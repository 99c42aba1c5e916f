// Package testenv gives integration tests their Redis and NATS (JetStream).
//
// Each helper picks, in this order:
//
//  1. the server named by REDIS_URL / NATS_URL, when set (what .ci/run does);
//  2. a container started with testcontainers-go, when a Docker engine answers
//     within a few seconds; one container per kind and test process, removed by
//     the testcontainers reaper when the process ends;
//  3. an in-process server from internal/embedded, one per test, closed when the
//     test ends.
//
// and logs its choice. RedisCluster gives a Redis Cluster: REDIS_CLUSTER_URL, else
// three redis-server processes it starts, else it skips the test. Servers may be shared by concurrent tests, so each test gets
// its own key prefix, stream name and subject prefix and must use them; cleanup
// deletes what carries them.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/sessionctx/sessionctx/internal/embedded"
)

const (
	dockerCheckTimeout = 3 * time.Second
	containerTimeout   = 2 * time.Minute
	opTimeout          = 10 * time.Second
)

// RedisEnv is one test's view of a Redis server.
type RedisEnv struct {
	// Client is connected to the server and closed when the test ends.
	Client *redis.Client
	// URL is the server's redis:// URL, for code that makes its own client.
	URL string
	// Prefix is unique to the test, e.g. "t3fa94c2e01b7:". Every key the test
	// writes must start with it (also keys with a hash tag: Prefix + "{id}:..."); the
	// keys that do are deleted when the test ends.
	Prefix string
}

// NATSEnv is one test's view of a NATS server with JetStream.
type NATSEnv struct {
	// URL is the server's URL, for code that makes its own connection.
	URL string
	// Conn is connected to the server and closed when the test ends.
	Conn *nats.Conn
	// JS is a JetStream context on Conn.
	JS jetstream.JetStream
	// Stream is a stream name unique to the test, e.g. "T_3FA94C2E01B7". Every
	// stream whose name starts with it (Stream, Stream+"_DLQ", ...), and every
	// key-value bucket or object store whose name does, is deleted when the test ends.
	Stream string
	// SubjectPrefix is unique to the test, e.g. "t3fa94c2e01b7.". Streams the test
	// creates must only bind subjects that start with it, so that they do not
	// overlap with other tests' streams on a shared server.
	SubjectPrefix string
}

// Redis returns a Redis for the test: REDIS_URL, else a redis:7-alpine container,
// else an in-process miniredis. It fails the test if it cannot connect.
func Redis(t testing.TB) *RedisEnv {
	t.Helper()
	url, source := os.Getenv("REDIS_URL"), "REDIS_URL"
	if url == "" {
		if dockerAvailable() {
			source = "container redis:7-alpine"
			url = sharedContainer(t, &redisContainer, startRedisContainer)
		} else {
			source = "embedded miniredis, one per test"
			srv, err := embedded.StartRedis(context.Background(), "")
			if err != nil {
				t.Fatalf("testenv: start embedded redis: %v", err)
			}
			t.Cleanup(srv.Close) // runs after the key cleanup registered below
			url = srv.URL()
		}
	}
	logChoice(t, "redis", source, url)
	return newRedisEnv(t, url)
}

// NATS returns a NATS server with JetStream for the test: NATS_URL, else a nats:2
// container, else an in-process nats-server. It fails the test if it cannot connect.
func NATS(t testing.TB) *NATSEnv {
	t.Helper()
	url, source := os.Getenv("NATS_URL"), "NATS_URL"
	if url == "" {
		if dockerAvailable() {
			source = "container nats:2"
			url = sharedContainer(t, &natsContainer, startNATSContainer)
		} else {
			return natsEmbedded(t)
		}
	}
	logChoice(t, "nats", source, url)
	return newNATSEnv(t, url)
}

// NATSEmbedded always returns an in-process server of the nats-server version in
// go.mod, one per test, so that a test can run against both it and the (maybe older)
// server NATS_URL names.
func NATSEmbedded(t testing.TB) *NATSEnv {
	t.Helper()
	return natsEmbedded(t)
}

func natsEmbedded(t testing.TB) *NATSEnv {
	t.Helper()
	srv, err := embedded.StartNATS(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatalf("testenv: start embedded nats: %v", err)
	}
	t.Cleanup(srv.Close) // runs after the stream cleanup registered below
	logChoice(t, "nats", "embedded nats-server, one per test", srv.URL())
	return newNATSEnv(t, srv.URL())
}

func newRedisEnv(t testing.TB, url string) *RedisEnv {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("testenv: redis URL %q: %v", url, err)
	}
	client := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		t.Fatalf("testenv: redis %s: %v", url, err)
	}
	env := &RedisEnv{Client: client, URL: url, Prefix: "t" + randomHex(t) + ":"}
	t.Cleanup(func() {
		defer client.Close()
		if err := deleteKeys(client, env.Prefix); err != nil {
			t.Errorf("testenv: delete keys %s*: %v", env.Prefix, err)
		}
	})
	return env
}

// deleteKeys deletes every key that starts with prefix, one UNLINK per key in
// pipelines (a cluster node refuses one UNLINK of keys in several slots).
func deleteKeys(client *redis.Client, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	pipe := client.Pipeline()
	for iter.Next(ctx) {
		pipe.Unlink(ctx, iter.Val())
		if pipe.Len() == 1000 {
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if pipe.Len() > 0 {
		_, err := pipe.Exec(ctx)
		return err
	}
	return nil
}

func newNATSEnv(t testing.TB, url string) *NATSEnv {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name("testenv "+t.Name()), nats.Timeout(opTimeout))
	if err != nil {
		t.Fatalf("testenv: nats %s: %v", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		t.Fatalf("testenv: jetstream on %s: %v", url, err)
	}
	id := randomHex(t)
	env := &NATSEnv{URL: url, Conn: nc, JS: js, Stream: "T_" + strings.ToUpper(id), SubjectPrefix: "t" + id + "."}
	t.Cleanup(func() {
		defer nc.Close()
		if err := deleteStreams(js, env.Stream); err != nil {
			t.Errorf("testenv: delete streams %s*: %v", env.Stream, err)
		}
	})
	return env
}

// deleteStreams deletes every stream whose name starts with prefix, and the
// streams behind key-value buckets and object stores whose names do.
func deleteStreams(js jetstream.JetStream, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	names := js.StreamNames(ctx)
	var doomed []string
	for name := range names.Name() {
		for _, p := range []string{prefix, "KV_" + prefix, "OBJ_" + prefix} {
			if strings.HasPrefix(name, p) {
				doomed = append(doomed, name)
				break
			}
		}
	}
	if err := names.Err(); err != nil {
		return err
	}
	for _, name := range doomed {
		if err := js.DeleteStream(ctx, name); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// randomHex returns 12 random hex digits.
func randomHex(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testenv: random: %v", err)
	}
	return hex.EncodeToString(b)
}

var logOnce sync.Map // "redis source" or "nats source" -> struct{}

// logChoice tells the test, and once per process stderr, which server it uses.
func logChoice(t testing.TB, kind, source, url string) {
	t.Helper()
	msg := fmt.Sprintf("testenv: %s from %s (%s)", kind, source, url)
	t.Log(msg)
	if _, seen := logOnce.LoadOrStore(kind+" "+source, struct{}{}); !seen {
		fmt.Fprintln(os.Stderr, msg)
	}
}

var docker struct {
	once sync.Once
	ok   bool
}

// dockerAvailable reports whether a Docker engine answers, asking once per process.
// It gives up after a few seconds and treats a panic in testcontainers as "no".
func dockerAvailable() bool {
	docker.once.Do(func() {
		answered := make(chan bool, 1)
		go func() {
			defer func() {
				if recover() != nil {
					answered <- false
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), dockerCheckTimeout)
			defer cancel()
			provider, err := testcontainers.ProviderDefault.GetProvider(testcontainers.WithLogger(tclog.NewNoopLogger()))
			if err != nil {
				answered <- false
				return
			}
			answered <- provider.Health(ctx) == nil // Health closes the provider
		}()
		select {
		case docker.ok = <-answered:
		case <-time.After(dockerCheckTimeout + time.Second):
		}
	})
	return docker.ok
}

// A containerServer is started at most once per test process.
type containerServer struct {
	once sync.Once
	url  string
	err  error
}

var redisContainer, natsContainer containerServer

// sharedContainer returns the URL of the process's container of one kind, starting
// it on first use. The container outlives the test; the testcontainers reaper
// removes it when the process ends.
func sharedContainer(t testing.TB, c *containerServer, start func(context.Context) (string, error)) string {
	t.Helper()
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
		defer cancel()
		c.url, c.err = start(ctx)
	})
	if c.err != nil {
		t.Fatalf("testenv: %v", c.err)
	}
	return c.url
}

func startRedisContainer(ctx context.Context) (string, error) {
	ctr, err := tcredis.Run(ctx, "redis:7-alpine")
	if err != nil {
		return "", fmt.Errorf("start redis container: %w", err)
	}
	url, err := ctr.ConnectionString(ctx)
	if err != nil {
		return "", fmt.Errorf("redis container address: %w", err)
	}
	return url, nil
}

func startNATSContainer(ctx context.Context) (string, error) {
	ctr, err := testcontainers.Run(ctx, "nats:2",
		testcontainers.WithCmd("-js"),
		testcontainers.WithExposedPorts("4222/tcp"),
		testcontainers.WithWaitStrategy(wait.ForLog("Server is ready")),
	)
	if err != nil {
		return "", fmt.Errorf("start nats container: %w", err)
	}
	url, err := ctr.PortEndpoint(ctx, "4222/tcp", "nats")
	if err != nil {
		return "", fmt.Errorf("nats container address: %w", err)
	}
	return url, nil
}
