package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/internal/testenv"
)

// cli runs sessionctx commands against one test's Redis and NATS.
type cli struct {
	t     *testing.T
	env   map[string]string
	redis *testenv.RedisEnv
	nats  *testenv.NATSEnv
}

func newCLI(t *testing.T) *cli {
	r, n := testenv.Redis(t), testenv.NATS(t)
	return &cli{t: t, redis: r, nats: n, env: map[string]string{
		"REDIS_URL": r.URL, "NATS_URL": n.URL, "SESSIONCTX_JWT_SECRET": "s",
		"SESSIONCTX_STREAM": n.Stream, "SESSIONCTX_SUBJECT_PREFIX": n.SubjectPrefix, "SESSIONCTX_KEY_PREFIX": r.Prefix,
	}}
}

// run runs a command and returns its standard output and error.
func (c *cli) run(stdin string, args ...string) (string, error) {
	var out bytes.Buffer
	root := func(k string) string { return c.env[k] }
	ctx := context.Background()
	err := runWithStdin(ctx, args, root, strings.NewReader(stdin), &out, io.Discard)
	return out.String(), err
}

// must runs a command that must succeed and returns its output with runs of
// blanks squashed to one space, one line per line.
func (c *cli) must(args ...string) string {
	c.t.Helper()
	out, err := c.run("", args...)
	if err != nil {
		c.t.Fatalf("sessionctx %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return squash(out)
}

func squash(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

func (c *cli) store() *contexts.Store {
	return contexts.NewStore(c.redis.Client, contexts.Options{Prefix: c.redis.Prefix})
}

func (c *cli) keys() []string {
	keys, err := c.redis.Client.Keys(context.Background(), c.redis.Prefix+"*").Result()
	if err != nil {
		c.t.Fatal(err)
	}
	return keys
}

func TestStreamsInitStatusPublishReplay(t *testing.T) {
	c := newCLI(t)
	if out := c.must("streams", "init"); !strings.Contains(out, "ready") {
		t.Errorf("streams init: %s", out)
	}
	c.must("streams", "init") // idempotent
	now := time.Now().UTC()
	c.must("publish", "cart.created", "--tenant", "acme", "--data", `{"sessionId":"s1","cartId":"c1"}`)
	c.must("publish", "customer.login", "--tenant", "acme", "--data", `{"sessionId":"s1","customerId":"k1"}`,
		"--time", now.Add(time.Second).Format(time.RFC3339Nano))
	status := c.must("streams", "status")
	if !strings.Contains(status, "messages 2") || !strings.Contains(status, "consumer sessionctx-worker lag 2") {
		t.Errorf("streams status:\n%s", status)
	}

	// A dry run reports what would change and writes nothing.
	out := c.must("replay", "--dry-run")
	if !strings.Contains(out, "2 events read") || !strings.Contains(out, "would change state 2") {
		t.Errorf("replay --dry-run:\n%s", out)
	}
	if keys := c.keys(); len(keys) != 0 {
		t.Fatalf("replay --dry-run wrote %v", keys)
	}

	// A rebuild into the empty Redis creates the context; a second replay changes nothing.
	out = c.must("replay", "--rebuild")
	if !strings.Contains(out, "applied 2") || !strings.Contains(out, "sessions touched 1") {
		t.Errorf("replay --rebuild:\n%s", out)
	}
	tenant, _ := contexts.DefaultTenants().Lookup("acme")
	if s, err := c.store().Get(context.Background(), tenant, "s1"); err != nil || s.CustomerID != "k1" {
		t.Fatalf("after rebuild: %+v, %v", s, err)
	}
	if _, err := c.run("", "replay", "--rebuild"); err == nil || !strings.Contains(err.Error(), "already holds contexts") {
		t.Errorf("a second --rebuild into a full Redis: err = %v", err)
	}
	out = c.must("replay", "--tenant", "acme")
	if !strings.Contains(out, "applied 0") || !strings.Contains(out, "unchanged (dup or stale) 2") {
		t.Errorf("repair replay:\n%s", out)
	}
	if out := c.must("replay", "--tenant", "other"); !strings.Contains(out, "0 events read") {
		t.Errorf("replay of another tenant:\n%s", out)
	}
}

func TestDeadLetterCommands(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	tenantsFile := filepath.Join(dir, "tenants.json")
	writeTenants := func(body string) {
		if err := os.WriteFile(tenantsFile, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeTenants(`{"tenants": {"acme": {"site": {"code": "main", "currency": "EUR", "homeBase": "DE", "language": "en"}}}}`)
	c.env["SESSIONCTX_TENANTS_FILE"] = tenantsFile
	c.must("streams", "init")
	c.must("publish", "cart.created", "--tenant", "globex", "--data", `{"sessionId":"g1","cartId":"c1"}`)
	if _, err := c.nats.JS.Publish(context.Background(), c.nats.SubjectPrefix+"cart.created.acme",
		[]byte(`{"specversion":"1.0","id":"bad-1","source":"t","type":"cart.created","tenant":"acme","data":{"sessionId":"a1"}}`)); err != nil {
		t.Fatal(err)
	}
	service(t, c.env, "serve", "--role", "worker")
	waitFor(t, 20*time.Second, func() (bool, string) {
		out, _ := c.run("", "dlq", "list")
		return strings.Count(out, "\n") == 3, out
	})
	list := c.must("dlq", "list")
	if !strings.Contains(list, `tenant is not configured: "globex"`) || !strings.Contains(list, "data.cartId is required") {
		t.Errorf("dlq list:\n%s", list)
	}
	var badSeq string
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, "cartId is required") {
			badSeq = strings.Fields(line)[0]
		}
	}
	if show := c.must("dlq", "show", badSeq); !strings.Contains(show, `"id": "bad-1"`) || !strings.Contains(show, "cartId is required") {
		t.Errorf("dlq show:\n%s", show)
	}

	// A fixed event is requeued and applied; the other still fails and stays.
	fixed := `{"specversion":"1.0","id":"bad-1-fixed","source":"t","type":"cart.created","tenant":"acme","data":{"sessionId":"a1","cartId":"c9"}}`
	out, err := c.run(fixed, "dlq", "requeue", badSeq, "--body", "-")
	out = squash(out)
	if err != nil || !strings.Contains(out, "1 requeued") {
		t.Fatalf("dlq requeue --body: %v\n%s", err, out)
	}
	out = c.must("dlq", "requeue", "--all")
	if !strings.Contains(out, "0 requeued, 1 left in place") {
		t.Errorf("dlq requeue --all with globex still unknown:\n%s", out)
	}
	tenant, _ := contexts.DefaultTenants().Lookup("acme")
	waitFor(t, 10*time.Second, func() (bool, string) {
		s, err := c.store().Get(context.Background(), tenant, "a1")
		return err == nil && s.CartID == "c9", fmt.Sprint(s, err)
	})

	if _, err := c.run("", "dlq", "purge"); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Errorf("dlq purge without a terminal or --yes: err = %v", err)
	}
	if out := c.must("dlq", "purge", "--yes"); !strings.Contains(out, "1 dead letters purged") {
		t.Errorf("dlq purge --yes: %s", out)
	}
	if out := c.must("dlq", "list"); !strings.Contains(out, "no dead letters") {
		t.Errorf("dlq list after purge: %s", out)
	}
}

func TestCommandsHelpAndErrors(t *testing.T) {
	for _, cmd := range [][]string{{"serve"}, {"token"}, {"publish"}, {"replay"}, {"dlq"}, {"dlq", "list"}, {"dlq", "show"},
		{"dlq", "requeue"}, {"dlq", "purge"}, {"streams"}, {"streams", "init"}, {"streams", "status"}} {
		t.Run(strings.Join(cmd, " "), func(t *testing.T) {
			var out bytes.Buffer
			err := runWithStdin(context.Background(), append(cmd, "--help"), func(string) string { return "" }, strings.NewReader(""), &out, io.Discard)
			if err != nil || !strings.Contains(out.String(), "Usage:") {
				t.Errorf("--help: %v\n%s", err, out.String())
			}
		})
	}
	unreachable := map[string]string{"NATS_URL": "nats://127.0.0.1:1", "REDIS_URL": "redis://127.0.0.1:1"}
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"replay", "--from-seq", "x"}, nil, "invalid argument"},
		{[]string{"replay", "--from-time", "yesterday"}, nil, "--from-time"},
		{[]string{"replay", "--from-seq", "3", "--resume"}, nil, "exclude each other"},
		{[]string{"replay"}, unreachable, "does not answer"},
		{[]string{"streams", "status"}, unreachable, "does not answer"},
		{[]string{"dlq", "list"}, unreachable, "does not answer"},
		{[]string{"dlq", "show", "zero"}, nil, "not a sequence number"},
		{[]string{"dlq", "requeue"}, nil, "or give --all"},
		{[]string{"publish", "cart.created", "--tenant", "acme"}, nil, "--tenant and --data are required"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			err := runWithStdin(context.Background(), tc.args, func(k string) string { return tc.env[k] }, strings.NewReader(""), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
