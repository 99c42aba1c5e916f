package auth

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
	"unsafe"
)

const (
	// DefaultCacheSize is how many verified tokens a Verifier remembers when
	// Config.CacheSize is zero.
	DefaultCacheSize = 65536
	// MaxCacheAge is how long a verified token is remembered at most. It bounds
	// how long a token signed by a key that has since left the JWKS (a key
	// rotation) is still accepted, and how long any other change of what the
	// verifier would decide takes to apply to tokens it has already seen.
	MaxCacheAge = 5 * time.Minute
	// maxCachedToken is the longest token that is cached, so that the
	// cache's memory stays bounded whatever the issuer puts in its tokens.
	maxCachedToken = 4096

	cacheShards = 64
)

// cache remembers the claims of verified tokens, keyed by a digest of the
// token: 128 bits of SHA-256, so that no one can make two tokens share an
// entry, and an entry does not keep the token's bytes (the token was half
// an entry's memory). It is a fixed number of shards, each a map under its
// own mutex; a full shard evicts an arbitrary entry (Go's map iteration
// order) to make room.
type cache struct {
	perShard int
	shards   [cacheShards]cacheShard
}

// cacheKey is the cache's key of a token.
type cacheKey [16]byte

func keyOf(token string) cacheKey {
	// The hash only reads the bytes: no copy of the token per request.
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
	return cacheKey(sum[:16])
}

type cacheShard struct {
	mu      sync.Mutex
	entries map[cacheKey]*cacheEntry // pointers: small slots, in a map that is never full
	_       [48]byte                 // keep shards' mutexes on separate cache lines
}

type cacheEntry struct {
	claims Claims
	// until is when the entry stops being used: the token's expiry (with the
	// leeway) or MaxCacheAge after it was cached, whichever is earlier.
	until time.Time
}

// newCache returns a cache of at most size entries (rounded up to a
// multiple of the shard count).
func newCache(size int) *cache {
	c := &cache{perShard: max(1, (size+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].entries = make(map[cacheKey]*cacheEntry)
	}
	return c
}

func (c *cache) shard(k cacheKey) *cacheShard {
	return &c.shards[binary.LittleEndian.Uint64(k[:8])%cacheShards]
}

// get returns the claims cached for a token, if they are still to be used
// at now. An entry past its until is dropped.
func (c *cache) get(k cacheKey, now time.Time) (Claims, bool) {
	s := c.shard(k)
	s.mu.Lock()
	e := s.entries[k]
	if e != nil && !now.Before(e.until) {
		delete(s.entries, k)
		e = nil
	}
	s.mu.Unlock()
	if e == nil {
		return Claims{}, false
	}
	return e.claims, true
}

// put caches a token's claims until the given time.
func (c *cache) put(k cacheKey, claims Claims, until time.Time) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[k]; !ok && len(s.entries) >= c.perShard {
		for old := range s.entries {
			delete(s.entries, old)
			break
		}
	}
	s.entries[k] = &cacheEntry{claims: claims, until: until}
}

// len is the number of cached tokens.
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.entries)
		s.mu.Unlock()
	}
	return n
}
