package auth

import (
	"hash/maphash"
	"sync"
	"time"
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

// cache remembers the claims of verified tokens, keyed by the token. It is a
// fixed number of shards, each a map under its own mutex; a full shard
// evicts an arbitrary entry (Go's map iteration order) to make room.
type cache struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu      sync.Mutex
	entries map[string]cacheEntry
	_       [48]byte // keep shards' mutexes on separate cache lines
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
	c := &cache{seed: maphash.MakeSeed(), perShard: max(1, (size+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].entries = make(map[string]cacheEntry)
	}
	return c
}

func (c *cache) shard(token string) *cacheShard {
	return &c.shards[maphash.String(c.seed, token)%cacheShards]
}

// get returns the claims cached for token, if they are still to be used at
// now. An entry past its until is dropped.
func (c *cache) get(token string, now time.Time) (Claims, bool) {
	s := c.shard(token)
	s.mu.Lock()
	e, ok := s.entries[token]
	if ok && !now.Before(e.until) {
		delete(s.entries, token)
		ok = false
	}
	s.mu.Unlock()
	return e.claims, ok
}

// put caches claims for token until the given time.
func (c *cache) put(token string, claims Claims, until time.Time) {
	if len(token) > maxCachedToken {
		return
	}
	s := c.shard(token)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[token]; !ok && len(s.entries) >= c.perShard {
		for k := range s.entries {
			delete(s.entries, k)
			break
		}
	}
	s.entries[token] = cacheEntry{claims: claims, until: until}
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
