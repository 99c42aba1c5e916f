package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// clock is a settable time for a verifier.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// clocked returns a verifier for cfg whose clock the test sets, starting at
// start.
func clocked(t *testing.T, cfg Config, start time.Time) (*Verifier, *clock) {
	t.Helper()
	v, err := NewVerifier(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: start}
	v.now = c.now
	return v, c
}

// hs256 is a token of tenant acme expiring at exp.
func hs256(t *testing.T, key []byte, sid string, exp time.Time) string {
	t.Helper()
	return sign(t, jwt.SigningMethodHS256, key, "", claims(func(c jwt.MapClaims) {
		c["sid"] = sid
		c["exp"] = exp.Unix()
	}))
}

func TestCachedTokenRefusedAfterExpiry(t *testing.T) {
	for _, leeway := range []time.Duration{0, 30 * time.Second} {
		t.Run(fmt.Sprintf("leeway %s", leeway), func(t *testing.T) {
			start := time.Now().Truncate(time.Second)
			exp := start.Add(2 * time.Second)
			v, clk := clocked(t, Config{Secret: secret, Leeway: leeway}, start)
			tok := hs256(t, secret, "s1", exp)
			if _, err := v.Verify(context.Background(), tok); err != nil {
				t.Fatal(err)
			}
			if n := v.cache.len(); n != 1 {
				t.Fatalf("%d cached tokens, want 1", n)
			}
			// Just before exp (plus leeway): still accepted, from the cache.
			clk.advance(exp.Add(leeway).Sub(clk.now()) - time.Millisecond)
			if c, err := v.Verify(context.Background(), tok); err != nil || c.SessionID != "s1" {
				t.Fatalf("Verify just before expiry = %+v, %v", c, err)
			}
			// At exp (plus leeway): refused as an expired token always is.
			clk.advance(time.Millisecond)
			_, err := v.Verify(context.Background(), tok)
			if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "token is expired") {
				t.Fatalf("Verify after expiry: %v, want an expired token refused", err)
			}
			if n := v.cache.len(); n != 0 {
				t.Errorf("%d cached tokens after the refusal, want 0", n)
			}
		})
	}
}

func TestCachedTokenRefusedAfterExpiryRealClock(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a token to expire")
	}
	v, err := NewVerifier(context.Background(), Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	// exp has whole seconds: at least 1 s ahead, at most 2 s.
	tok := hs256(t, secret, "s1", time.Now().Add(2*time.Second))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("second Verify: %v", err)
	}
	time.Sleep(2100 * time.Millisecond)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Verify after expiry: %v, want ErrInvalidToken", err)
	}
}

// TestCacheAgeBoundsKeyRemoval: once a token is cached, the keys are not
// consulted for it again for MaxCacheAge, and no longer.
func TestCacheAgeBoundsKeyRemoval(t *testing.T) {
	start := time.Now()
	v, clk := clocked(t, Config{Secret: secret}, start)
	tok := hs256(t, secret, "s1", start.Add(time.Hour))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	v.secret = []byte("the rotated secret, which did not sign the token") // the key is gone
	clk.advance(MaxCacheAge - time.Second)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("Verify within MaxCacheAge: %v (the cached verification should answer)", err)
	}
	clk.advance(time.Second)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "signature is invalid") {
		t.Fatalf("Verify after MaxCacheAge: %v, want the signature refused", err)
	}
}

func TestRefusalsAreNotCached(t *testing.T) {
	v, err := NewVerifier(context.Background(), Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{
		hs256(t, []byte("another secret"), "s1", time.Now().Add(time.Hour)),
		hs256(t, secret, "s1", time.Now().Add(-time.Hour)),
		sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["scope"] = "tenant=other" })),
		noneToken(t),
		"not.a.jwt",
	} {
		for range 2 {
			if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify(%s) = %v, want ErrInvalidToken", tok, err)
			}
		}
	}
	if n := v.cache.len(); n != 0 {
		t.Errorf("%d cached tokens after refusals only, want 0", n)
	}
}

func TestCacheBounded(t *testing.T) {
	const size = 128
	v, err := NewVerifier(context.Background(), Config{Secret: secret, CacheSize: size})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	for i := range 2000 {
		sid := fmt.Sprintf("s%d", i)
		c, err := v.Verify(context.Background(), hs256(t, secret, sid, exp))
		if err != nil || c.SessionID != sid {
			t.Fatalf("Verify(%s) = %+v, %v", sid, c, err)
		}
	}
	if n := v.cache.len(); n > size || n < size/2 {
		t.Errorf("%d cached tokens, want at most %d (and the cache used)", n, size)
	}
	if def := newCache(DefaultCacheSize); def.perShard*cacheShards != DefaultCacheSize {
		t.Errorf("default cache holds %d entries, want %d", def.perShard*cacheShards, DefaultCacheSize)
	}
}

func TestCacheDisabled(t *testing.T) {
	v, err := NewVerifier(context.Background(), Config{Secret: secret, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	if v.cache != nil {
		t.Fatal("cache enabled with CacheSize -1")
	}
	tok := hs256(t, secret, "s1", time.Now().Add(time.Hour))
	for range 2 {
		if c, err := v.Verify(context.Background(), tok); err != nil || c.SessionID != "s1" {
			t.Fatalf("Verify = %+v, %v", c, err)
		}
	}
}

// TestCachedScopesNotShared: a caller appending to the returned scopes does
// not change what later callers get.
func TestCachedScopesNotShared(t *testing.T) {
	v, err := NewVerifier(context.Background(), Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	tok := hs256(t, secret, "s1", time.Now().Add(time.Hour))
	c1, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(c1.Scopes, "extra")
	c2, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c2.Scopes, " ") != "openid "+ScopeManage {
		t.Errorf("scopes = %q", c2.Scopes)
	}
}

// TestCacheConcurrent verifies valid and invalid tokens from many goroutines
// through a small cache (so that entries are evicted meanwhile); run it with
// -race.
func TestCacheConcurrent(t *testing.T) {
	v, err := NewVerifier(context.Background(), Config{Secret: secret, CacheSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	type token struct {
		s, sid string
		ok     bool
	}
	var tokens []token
	for i := range 200 {
		sid := fmt.Sprintf("s%d", i)
		key, ok := secret, true
		if i%5 == 0 {
			key, ok = []byte("another secret"), false
		}
		tokens = append(tokens, token{hs256(t, key, sid, exp), sid, ok})
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 2000 {
				tk := tokens[(g*7+i*13)%len(tokens)]
				c, err := v.Verify(context.Background(), tk.s)
				switch {
				case tk.ok && (err != nil || c.SessionID != tk.sid || c.Tenant != "acme"):
					t.Errorf("Verify(%s) = %+v, %v", tk.sid, c, err)
					return
				case !tk.ok && !errors.Is(err, ErrInvalidToken):
					t.Errorf("Verify(%s) = %+v, %v; want ErrInvalidToken", tk.sid, c, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := v.cache.len(); n > 64 {
		t.Errorf("%d cached tokens, want at most 64", n)
	}
}

func BenchmarkVerify(b *testing.B) {
	tok, err := Mint(secret, TokenSpec{Tenant: "acme", SessionID: "s1", Scopes: []string{"openid"}})
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{-1, 0} {
		name := "cached"
		if size < 0 {
			name = "uncached"
		}
		b.Run(name, func(b *testing.B) {
			v, err := NewVerifier(context.Background(), Config{Secret: secret, CacheSize: size})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
