package embedded

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

func TestNATSJetStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	n, err := StartNATS(ctx, "", "")
	if err != nil {
		t.Fatalf("StartNATS: %v", err)
	}
	storeDir := n.tempDir
	defer func() {
		n.Close()
		if _, err := os.Stat(storeDir); !os.IsNotExist(err) {
			t.Errorf("temp store dir %s still there after Close (stat: %v)", storeDir, err)
		}
	}()

	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatalf("connect %s: %v", n.URL(), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EMBEDDED_TEST", Subjects: []string{"embedded.>"}})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := js.Publish(ctx, "embedded.hello", []byte("world")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	if msg.Subject() != "embedded.hello" || string(msg.Data()) != "world" {
		t.Fatalf("got %s %q, want embedded.hello \"world\"", msg.Subject(), msg.Data())
	}
}

func TestNATSGivenStoreDirIsKept(t *testing.T) {
	dir := t.TempDir()
	n, err := StartNATS(context.Background(), "", dir)
	if err != nil {
		t.Fatalf("StartNATS: %v", err)
	}
	n.Close()
	n.Close() // idempotent
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("store dir given by the caller was removed: %v", err)
	}
}

func startRedis(t *testing.T) *redis.Client {
	t.Helper()
	r, err := StartRedis(context.Background(), "")
	if err != nil {
		t.Fatalf("StartRedis: %v", err)
	}
	t.Cleanup(r.Close)
	opts, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatalf("parse %s: %v", r.URL(), err)
	}
	if opts.Addr != r.Addr() {
		t.Fatalf("URL %s does not match Addr %s", r.URL(), r.Addr())
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// luaFeatures exercises every command and Lua feature the service's scripts rely on.
// It returns a flat list of results that the test compares with what Redis 7 gives.
// KEYS: hash, set, zset (sharing one hash tag). ARGV[1]: now in Unix milliseconds.
const luaFeatures = `
local h, s, z = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[1])
local out = {}
local function add(v) out[#out + 1] = tostring(v) end
local function sorted(list) table.sort(list) return table.concat(list, ",") end

-- hashes
add(redis.call('HSET', h, 'a', '1', 'b', '2', 'c', '3'))      -- 3
add(redis.call('HDEL', h, 'c'))                              -- 1
add(redis.call('HGET', h, 'a'))                              -- 1
add(tostring(redis.call('HGET', h, 'zz')))                   -- false
local flat, pairs_ = redis.call('HGETALL', h), {}
for i = 1, #flat, 2 do pairs_[#pairs_ + 1] = flat[i] .. '=' .. flat[i + 1] end
add(sorted(pairs_))                                          -- a=1,b=2

-- expiry
add(redis.call('PEXPIREAT', h, now + 60000))                 -- 1
local pttl = redis.call('PTTL', h)
add(pttl > 55000 and pttl <= 60000)                          -- true
add(redis.call('PERSIST', h))                                -- 1
add(redis.call('PTTL', h))                                   -- -1
add(redis.call('PTTL', h .. ':missing'))                     -- -2

-- sets
add(redis.call('SADD', s, 'x', 'y', 'z'))                    -- 3
add(redis.call('SREM', s, 'y'))                              -- 1
add(sorted(redis.call('SMEMBERS', s)))                       -- x,z

-- sorted sets, with 13-digit millisecond scores
redis.call('ZADD', z, now + 1, 'a', now + 2, 'b', now + 3, 'c', now + 4, 'd')
add(table.concat(redis.call('ZRANGEBYSCORE', z, '-inf', now + 3, 'LIMIT', 0, 2), ","))  -- a,b
add(table.concat(redis.call('ZRANGEBYSCORE', z, '(' .. (now + 1), '+inf', 'LIMIT', 1, 10), ","))  -- c,d
add(redis.call('ZREMRANGEBYSCORE', z, '-inf', now + 2))      -- 2
add(table.concat(redis.call('ZRANGEBYSCORE', z, '-inf', '+inf'), ","))  -- c,d

-- Lua strings and numbers
add('2024-01-02T10:00:00.000Z' < '2024-01-10T09:00:00.000Z') -- true
add('b' < 'a')                                               -- false
add(tonumber('1733241600123') + 1 == 1733241600124)          -- true
add(string.format('%d', tonumber('1733241600123') + 1))      -- 1733241600124
add(string.find('t1:{abc}:ctx', '{', 1, true))               -- 4
add(string.sub('t1:{abc}:ctx', 5, 7))                        -- abc
add(tostring(string.find('abc', 'z', 1, true)))              -- nil
add(tostring(now))                                           -- now, all 13 digits
add(now .. '')                                               -- now, all 13 digits
return out
`

func luaWant(now int64) []string {
	return []string{
		"3", "1", "1", "false", "a=1,b=2",
		"1", "true", "1", "-1", "-2",
		"3", "1", "x,z",
		"a,b", "c,d", "2", "c,d",
		"true", "false", "true", "1733241600124", "4", "abc", "nil",
		strconv.FormatInt(now, 10), strconv.FormatInt(now, 10),
	}
}

// runLuaFeatures runs luaFeatures once through EVALSHA (after SCRIPT LOAD) and once
// through EVAL, and also checks that a Lua number returned to the client keeps all
// 13 digits.
func runLuaFeatures(t *testing.T, c *redis.Client, prefix string) {
	ctx := context.Background()
	now := time.Now().UnixMilli()
	for _, mode := range []string{"EVALSHA", "EVAL"} {
		keys := []string{prefix + "{tag}:" + mode + ":h", prefix + "{tag}:" + mode + ":s", prefix + "{tag}:" + mode + ":z"}
		t.Cleanup(func() { c.Del(context.Background(), keys...) })
		var res any
		var err error
		if mode == "EVALSHA" {
			sha, lerr := c.ScriptLoad(ctx, luaFeatures).Result()
			if lerr != nil {
				t.Fatalf("SCRIPT LOAD: %v", lerr)
			}
			res, err = c.EvalSha(ctx, sha, keys, now).Result()
		} else {
			res, err = c.Eval(ctx, luaFeatures, keys, now).Result()
		}
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		got, ok := res.([]any)
		if !ok {
			t.Fatalf("%s: result %T %v, want a list", mode, res, res)
		}
		want := luaWant(now)
		if len(got) != len(want) {
			t.Fatalf("%s: %d results %v, want %d %v", mode, len(got), got, len(want), want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: result %d = %v, want %s (all: %v)", mode, i+1, got[i], want[i], got)
			}
		}
	}

	n, err := c.Eval(ctx, "return tonumber(ARGV[1]) + 1", nil, now).Int64()
	if err != nil || n != now+1 {
		t.Errorf("Lua number reply: got %d, %v, want %d", n, err, now+1)
	}
}

func TestRedisLuaFeatures(t *testing.T) {
	t.Run("miniredis", func(t *testing.T) {
		runLuaFeatures(t, startRedis(t), "")
	})
	// The same expectations against a real Redis, so that they are known to be the
	// real behaviour and not miniredis's.
	t.Run("REDIS_URL", func(t *testing.T) {
		url := os.Getenv("REDIS_URL")
		if url == "" {
			t.Skip("REDIS_URL not set")
		}
		opts, err := redis.ParseURL(url)
		if err != nil {
			t.Fatalf("parse REDIS_URL: %v", err)
		}
		c := redis.NewClient(opts)
		t.Cleanup(func() { _ = c.Close() }) // after the key cleanups runLuaFeatures registers
		runLuaFeatures(t, c, "embeddedtest"+strconv.FormatInt(time.Now().UnixNano(), 36)+":")
	})
}

func TestRedisTTLFollowsWallClock(t *testing.T) {
	c := startRedis(t)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.PExpireAt(ctx, "k", time.Now().Add(300*time.Millisecond)).Err(); err != nil {
		t.Fatal(err)
	}
	ttl, err := c.PTTL(ctx, "k").Result()
	if err != nil || ttl <= 0 || ttl > 300*time.Millisecond {
		t.Fatalf("PTTL right after PEXPIREAT: %v, %v; want in (0, 300ms]", ttl, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := c.Exists(ctx, "k").Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("key with PEXPIREAT now+300ms still exists after 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedisTimeIsWallClock(t *testing.T) {
	c := startRedis(t)
	got, err := c.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(got); d < -time.Second || d > time.Second {
		t.Fatalf("TIME is %v, %v away from the wall clock", got, d)
	}
}

func TestRedisClockGoroutineEnds(t *testing.T) {
	t.Run("on Close", func(t *testing.T) {
		r, err := StartRedis(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		r.Close() // idempotent
		select {
		case <-r.done:
		default:
			t.Fatal("clock goroutine still running after Close")
		}
	})
	t.Run("when ctx is done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		r, err := StartRedis(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		cancel()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Fatal("clock goroutine still running 5s after ctx was cancelled")
		}
	})
}
