package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisClusterEnv is one test's view of a Redis Cluster.
type RedisClusterEnv struct {
	// Client is connected to the cluster and closed when the test ends.
	Client *redis.ClusterClient
	// URL names the cluster's nodes, as redis.ParseClusterURL reads it.
	URL string
	// Prefix is unique to the test; the keys that start with it are deleted
	// from every primary when the test ends.
	Prefix string
}

// RedisCluster returns a Redis Cluster for the test: REDIS_CLUSTER_URL when
// set (redis://host:port?addr=host2:port2..., as redis.ParseClusterURL
// reads it), else three primaries started here from the redis-server and
// redis-cli on PATH, stopped when the test ends. Without either it skips
// the test, saying why.
func RedisCluster(t testing.TB) *RedisClusterEnv {
	t.Helper()
	url, source := os.Getenv("REDIS_CLUSTER_URL"), "REDIS_CLUSTER_URL"
	if url == "" {
		if _, err := exec.LookPath("redis-server"); err != nil {
			t.Skip("testenv: no REDIS_CLUSTER_URL and no redis-server on PATH to start a cluster with")
		}
		source, url = "three redis-server processes started for the test", startCluster(t)
	}
	opts, err := redis.ParseClusterURL(url)
	if err != nil {
		t.Fatalf("testenv: REDIS_CLUSTER_URL: %v", err)
	}
	client := redis.NewClusterClient(opts)
	env := &RedisClusterEnv{Client: client, URL: url, Prefix: "t" + randomHex(t) + ":"}
	logChoice(t, "redis cluster", source, url)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		err := client.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
			return deleteKeys(c, env.Prefix)
		})
		if err != nil {
			t.Errorf("testenv: delete the test's cluster keys: %v", err)
		}
		_ = client.Close()
	})
	return env
}

// RedisServer returns a Redis of the test's own: a redis-server process
// started for it on a free loopback port and stopped when the test ends,
// for tests that would disturb others on a shared server (deleting the
// function library, say). Without redis-server on PATH it skips the test.
func RedisServer(t testing.TB) *RedisEnv {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("testenv: no redis-server on PATH to start a Redis of the test's own")
	}
	addr := startRedisServer(t, t.TempDir())
	url := "redis://" + addr
	logChoice(t, "redis", "a redis-server process of the test's own", url)
	return newRedisEnv(t, url)
}

// startRedisServer starts a redis-server on a free loopback port with
// args, stopped when the test ends, and returns its address once it
// answers.
func startRedisServer(t testing.TB, dir string, args ...string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	port := addr[strings.LastIndex(addr, ":")+1:]
	cmd := exec.Command("redis-server", append([]string{"--bind", "127.0.0.1", "--port", port, "--dir", dir,
		"--save", "", "--appendonly", "no"}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start redis-server: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for c.Ping(ctx).Err() != nil {
		if ctx.Err() != nil {
			t.Fatalf("testenv: redis-server on %s did not answer", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr
}

// startCluster starts three cluster-enabled redis-server processes, joins
// them into a cluster and returns its URL.
func startCluster(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	var addrs []string
	for i := range 3 {
		addrs = append(addrs, startRedisServer(t, dir, "--cluster-enabled", "yes", "--cluster-config-file", fmt.Sprintf("nodes-%d.conf", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	if out, err := exec.CommandContext(ctx, "redis-cli", append(args, "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v: %s", err, out)
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		for !strings.Contains(c.ClusterInfo(ctx).Val(), "cluster_state:ok") {
			if ctx.Err() != nil {
				t.Fatalf("testenv: the cluster on %v did not become ready", addrs)
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = c.Close()
	}
	return fmt.Sprintf("redis://%s?addr=%s&addr=%s", addrs[0], addrs[1], addrs[2])
}
