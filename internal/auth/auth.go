// Package auth verifies the JWTs that callers of the HTTP API present and
// mints HS256 tokens for local use.
//
// Tokens are issued by the deployment's login service, signed either with a
// shared HS256 secret or with RS256/ES256 keys published as a JWKS (a file or
// a URL). Claims: tenant (or a "tenant=<name>" entry in scope), sid (the
// session id), sub (the customer id; absent for anonymous tokens), scope
// (space separated) and exp; iss and aud are checked when configured.
package auth

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// The management scopes: a token with either may read and edit any context of
// its tenant.
const (
	// ScopeManage is the management scope of the reference API.
	ScopeManage = "sessioncontext.context_manage"
	// ScopeManageLegacy is the older spelling, accepted too.
	ScopeManageLegacy = "session_context.context_manage"
)

// ErrInvalidToken marks every refusal of a token; the wrapped message says why.
var ErrInvalidToken = errors.New("invalid token")

// Claims are the claims of a verified token that the API uses.
type Claims struct {
	// Tenant is the token's tenant: the "tenant" claim, else a "tenant=<name>"
	// entry of scope. Empty when the token names none.
	Tenant string
	// SessionID is the "sid" claim: the session a shopper token belongs to.
	SessionID string
	// Subject is the "sub" claim: the customer id; empty for anonymous tokens.
	Subject string
	// Scopes are the entries of the "scope" claim.
	Scopes []string
	// ExpiresAt is the "exp" claim.
	ExpiresAt time.Time
}

// HasScope reports whether the token carries scope s.
func (c Claims) HasScope(s string) bool { return slices.Contains(c.Scopes, s) }

// CanManage reports whether the token carries a management scope.
func (c Claims) CanManage() bool { return c.HasScope(ScopeManage) || c.HasScope(ScopeManageLegacy) }

// Config says which tokens a Verifier accepts. At least one of Secret and
// JWKS is required.
type Config struct {
	// Secret verifies HS256 tokens. Empty: HS256 is refused.
	Secret []byte
	// JWKS is a JWKS file path or an http(s) URL whose keys verify RS256 and
	// ES256 tokens. Empty: RS256 and ES256 are refused. A URL is fetched in the
	// background and refreshed hourly and when a token names an unknown kid.
	JWKS string
	// Issuer, when set, must equal the "iss" claim.
	Issuer string
	// Audience, when set, must be among the "aud" claim's entries.
	Audience string
	// Leeway tolerates clock skew on exp, nbf and iat.
	Leeway time.Duration
	// HTTPClient fetches a JWKS URL; http.DefaultClient when nil.
	HTTPClient *http.Client
	// CacheSize is how many verified tokens are remembered, so that a token
	// presented again is not parsed and its signature not checked again
	// (DefaultCacheSize when zero; negative disables the cache). A remembered
	// token's exp is still checked on every use, but it is not checked
	// against the keys again for up to MaxCacheAge: a token signed by a key
	// removed from the JWKS is accepted for at most that long after the
	// verifier last saw it verified.
	CacheSize int
}

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	secret []byte
	jwks   keyfunc.Keyfunc
	parser *jwt.Parser
	leeway time.Duration
	cache  *cache // nil: disabled
	now    func() time.Time
}

// NewVerifier returns a verifier for cfg. ctx bounds the background refresh
// of a JWKS URL: cancel it when the verifier is no longer used.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	if len(cfg.Secret) == 0 && cfg.JWKS == "" {
		return nil, errors.New("auth: a JWT secret or a JWKS is required")
	}
	v := &Verifier{secret: cfg.Secret, leeway: max(cfg.Leeway, 0), now: time.Now}
	if cfg.CacheSize >= 0 {
		v.cache = newCache(cmp.Or(cfg.CacheSize, DefaultCacheSize))
	}
	var methods []string
	if len(cfg.Secret) > 0 {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	if cfg.JWKS != "" {
		kf, err := loadJWKS(ctx, cfg)
		if err != nil {
			return nil, err
		}
		v.jwks = kf
		methods = append(methods, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg())
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Leeway > 0 {
		opts = append(opts, jwt.WithLeeway(cfg.Leeway))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

func loadJWKS(ctx context.Context, cfg Config) (keyfunc.Keyfunc, error) {
	if strings.HasPrefix(cfg.JWKS, "https://") || strings.HasPrefix(cfg.JWKS, "http://") {
		kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKS}, keyfunc.Override{
			Client:      cfg.HTTPClient,
			HTTPTimeout: 10 * time.Second,
		})
		if err != nil {
			return nil, fmt.Errorf("auth: JWKS %s: %w", cfg.JWKS, err)
		}
		return kf, nil
	}
	raw, err := os.ReadFile(cfg.JWKS)
	if err != nil {
		return nil, fmt.Errorf("auth: read JWKS file: %w", err)
	}
	kf, err := keyfunc.NewJWKSetJSON(json.RawMessage(raw))
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS file %s: %w", cfg.JWKS, err)
	}
	keys, err := kf.Storage().KeyReadAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS file %s: %w", cfg.JWKS, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("auth: JWKS file %s holds no keys", cfg.JWKS)
	}
	return kf, nil
}

// tokenClaims is the JWT payload as issued.
type tokenClaims struct {
	jwt.RegisteredClaims
	Tenant    string    `json:"tenant,omitempty"`
	SessionID string    `json:"sid,omitempty"`
	Scope     scopeList `json:"scope,omitempty"`
}

// scopeList reads "scope" as a space-separated string (RFC 8693) or, as some
// issuers write it, a list of strings.
type scopeList []string

func (s *scopeList) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = strings.Fields(str)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("scope must be a string or a list of strings")
	}
	*s = nil
	for _, e := range list {
		*s = append(*s, strings.Fields(e)...)
	}
	return nil
}

func (s scopeList) MarshalJSON() ([]byte, error) { return json.Marshal(strings.Join(s, " ")) }

// Verify checks a token's signature, algorithm, expiry and the configured
// issuer and audience, and returns its claims. Every error wraps
// ErrInvalidToken.
//
// A verified token is remembered (see Config.CacheSize) for at most
// MaxCacheAge: presented again, only its expiry is checked. Refused tokens
// are never remembered. The returned Scopes may be shared between calls:
// callers must not modify its elements.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if v.cache == nil {
		return v.verify(ctx, token)
	}
	now := v.now()
	// An entry lasts no longer than the token's exp; checking it again here
	// keeps an expired token refused whatever the cache does. A token found
	// expired is verified in full, to be refused as it always is.
	if len(token) > maxCachedToken {
		return v.verify(ctx, token)
	}
	key := keyOf(token)
	if c, ok := v.cache.get(key, now); ok && now.Before(c.ExpiresAt.Add(v.leeway)) {
		return c, nil
	}
	c, err := v.verify(ctx, token)
	if err != nil {
		return Claims{}, err
	}
	until := now.Add(MaxCacheAge)
	if exp := c.ExpiresAt.Add(v.leeway); exp.Before(until) {
		until = exp
	}
	v.cache.put(key, c, until)
	return c, nil
}

// verify is Verify without the cache.
func (v *Verifier) verify(ctx context.Context, token string) (Claims, error) {
	var tc tokenClaims
	_, err := v.parser.ParseWithClaims(token, &tc, func(t *jwt.Token) (any, error) {
		switch t.Method.Alg() {
		case jwt.SigningMethodHS256.Alg():
			if len(v.secret) == 0 {
				return nil, errors.New("HS256 tokens are not accepted")
			}
			return v.secret, nil
		case jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg():
			if v.jwks == nil {
				return nil, fmt.Errorf("%s tokens are not accepted", t.Method.Alg())
			}
			return v.jwks.KeyfuncCtx(ctx)(t)
		}
		return nil, fmt.Errorf("algorithm %s is not accepted", t.Method.Alg())
	})
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	c := Claims{Tenant: tc.Tenant, SessionID: tc.SessionID, Subject: tc.Subject}
	if tc.ExpiresAt != nil {
		c.ExpiresAt = tc.ExpiresAt.Time
	}
	for _, s := range tc.Scope {
		name, ok := strings.CutPrefix(s, "tenant=")
		if !ok {
			c.Scopes = append(c.Scopes, s)
			continue
		}
		switch {
		case c.Tenant == "":
			c.Tenant = name
		case c.Tenant != name:
			return Claims{}, fmt.Errorf("%w: scope names tenant %q but the token is for tenant %q", ErrInvalidToken, name, c.Tenant)
		}
	}
	c.Scopes = slices.Clip(c.Scopes) // an append by a caller must not write into a cached entry
	return c, nil
}

// TokenSpec describes a token to mint.
type TokenSpec struct {
	// Tenant is written as the "tenant" claim.
	Tenant string
	// SessionID is written as "sid"; empty for service tokens.
	SessionID string
	// CustomerID is written as "sub"; empty for anonymous and service tokens.
	CustomerID string
	// Scopes are written space separated as "scope".
	Scopes []string
	// TTL is the token's lifetime; one hour when zero.
	TTL time.Duration
	// Issuer and Audience are written as "iss" and "aud" when set.
	Issuer   string
	Audience string
}

// Mint returns an HS256 token signed with secret.
func Mint(secret []byte, spec TokenSpec) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("auth: mint: empty secret")
	}
	ttl := spec.TTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	now := time.Now()
	tc := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   spec.CustomerID,
			Issuer:    spec.Issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Tenant:    spec.Tenant,
		SessionID: spec.SessionID,
		Scope:     spec.Scopes,
	}
	if spec.Audience != "" {
		tc.Audience = jwt.ClaimStrings{spec.Audience}
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, tc).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: mint: %w", err)
	}
	return s, nil
}
