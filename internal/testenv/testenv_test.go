package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func TestRedisGivesEachTestItsOwnPrefix(t *testing.T) {
	a, b := Redis(t), Redis(t)
	if a.Prefix == b.Prefix {
		t.Fatalf("two calls gave the same prefix %q", a.Prefix)
	}
	ctx := context.Background()
	if err := a.Client.Set(ctx, a.Prefix+"k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Client.Get(ctx, a.Prefix+"k").Result(); err != nil || got != "v" {
		t.Fatalf("GET: %q, %v", got, err)
	}
}

func TestRedisCleanupDeletesTheTestsKeys(t *testing.T) {
	base := Redis(t)
	ctx := context.Background()
	keep := base.Prefix + "keep"
	if err := base.Client.Set(ctx, keep, "1", 0).Err(); err != nil {
		t.Fatal(err)
	}

	var prefix string
	t.Run("writer", func(t *testing.T) {
		// The same server as base, whatever kind it is, so that base can look after
		// the subtest's cleanup.
		env := newRedisEnv(t, base.URL)
		prefix = env.Prefix
		pipe := env.Client.Pipeline()
		for i := range 2500 { // more than one SCAN and UNLINK batch
			pipe.Set(ctx, fmt.Sprintf("%s{ctx%d}:%d", env.Prefix, i%26, i), "v", 0)
		}
		pipe.HSet(ctx, env.Prefix+"h", "f", "v")
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	})

	left, err := base.Client.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("%d keys with prefix %s left after cleanup, e.g. %s", len(left), prefix, left[0])
	}
	if n, err := base.Client.Exists(ctx, keep).Result(); err != nil || n != 1 {
		t.Fatalf("another test's key %s: exists=%d, %v; want it kept", keep, n, err)
	}
}

func TestNATSGivesEachTestItsOwnNames(t *testing.T) {
	a, b := NATS(t), NATS(t)
	if a.Stream == b.Stream || a.SubjectPrefix == b.SubjectPrefix {
		t.Fatalf("two calls gave the same names: %q %q, %q %q", a.Stream, b.Stream, a.SubjectPrefix, b.SubjectPrefix)
	}
	publishAndRead(t, a)
}

func TestNATSEmbedded(t *testing.T) {
	env := NATSEmbedded(t)
	if url := os.Getenv("NATS_URL"); url != "" && env.URL == url {
		t.Fatalf("NATSEmbedded gave NATS_URL %s", url)
	}
	publishAndRead(t, env)
}

func publishAndRead(t *testing.T, env *NATSEnv) {
	t.Helper()
	ctx := context.Background()
	stream, err := env.JS.CreateStream(ctx, jetstream.StreamConfig{Name: env.Stream, Subjects: []string{env.SubjectPrefix + ">"}})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := env.JS.Publish(ctx, env.SubjectPrefix+"hello", []byte("world")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next()
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	if string(msg.Data()) != "world" {
		t.Fatalf("got %q", msg.Data())
	}
}

func TestNATSCleanupDeletesTheTestsStreams(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  func(testing.TB) *NATSEnv
	}{{"NATS", NATS}, {"NATSEmbedded", NATSEmbedded}} {
		t.Run(tc.name, func(t *testing.T) {
			base := tc.env(t)
			ctx := context.Background()
			if _, err := base.JS.CreateStream(ctx, jetstream.StreamConfig{Name: base.Stream, Subjects: []string{base.SubjectPrefix + ">"}}); err != nil {
				t.Fatal(err)
			}

			var created []string
			t.Run("creator", func(t *testing.T) {
				env := newNATSEnv(t, base.URL)
				for _, name := range []string{env.Stream, env.Stream + "_DLQ"} {
					cfg := jetstream.StreamConfig{Name: name, Subjects: []string{env.SubjectPrefix + name + ".>"}}
					if _, err := env.JS.CreateStream(ctx, cfg); err != nil {
						t.Fatalf("create stream %s: %v", name, err)
					}
					created = append(created, name)
				}
				kv, err := env.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: env.Stream + "_KV"})
				if err != nil {
					t.Fatalf("create kv: %v", err)
				}
				created = append(created, "KV_"+kv.Bucket())
			})

			for _, name := range created {
				if _, err := base.JS.Stream(ctx, name); !errors.Is(err, jetstream.ErrStreamNotFound) {
					t.Errorf("stream %s after cleanup: %v; want not found", name, err)
				}
			}
			if _, err := base.JS.Stream(ctx, base.Stream); err != nil {
				t.Errorf("another test's stream %s: %v; want it kept", base.Stream, err)
			}
		})
	}
}
