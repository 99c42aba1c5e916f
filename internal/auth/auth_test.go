package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte("test-secret-0123456789abcdef")

type keys struct {
	rsa, otherRSA *rsa.PrivateKey
	ec            *ecdsa.PrivateKey
	jwks          []byte // public RSA key "rsa1" and EC key "ec1"
}

func newKeys(t *testing.T) keys {
	t.Helper()
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	o, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	coord := func(i *big.Int) string { return b64(i.FillBytes(make([]byte, 32))) }
	set := map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "rsa1", "alg": "RS256", "use": "sig", "n": b64(r.N.Bytes()), "e": b64(big.NewInt(int64(r.E)).Bytes())},
		{"kty": "EC", "kid": "ec1", "alg": "ES256", "use": "sig", "crv": "P-256", "x": coord(e.X), "y": coord(e.Y)},
	}}
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return keys{rsa: r, otherRSA: o, ec: e, jwks: raw}
}

func writeJWKS(t *testing.T, raw []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func claims(mod func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"tenant": "acme", "sid": "s1", "sub": "c1", "scope": "openid " + ScopeManage,
		"iat": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// noneToken is an unsigned token with "alg": "none".
func noneToken(t *testing.T) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	k := newKeys(t)
	jwksFile := writeJWKS(t, k.jwks)
	ctx := context.Background()
	both, err := NewVerifier(ctx, Config{Secret: secret, JWKS: jwksFile, Issuer: "https://login.example", Audience: "sessionctx"})
	if err != nil {
		t.Fatal(err)
	}
	secretOnly, err := NewVerifier(ctx, Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	jwksOnly, err := NewVerifier(ctx, Config{JWKS: jwksFile})
	if err != nil {
		t.Fatal(err)
	}
	withIss := func(c jwt.MapClaims) { c["iss"] = "https://login.example"; c["aud"] = []string{"other", "sessionctx"} }

	tests := []struct {
		name    string
		v       *Verifier
		token   string
		want    Claims // checked when wantErr is empty
		wantErr string // substring of the refusal
	}{
		{name: "HS256", v: secretOnly, token: sign(t, jwt.SigningMethodHS256, secret, "", claims(nil)),
			want: Claims{Tenant: "acme", SessionID: "s1", Subject: "c1", Scopes: []string{"openid", ScopeManage}}},
		{name: "HS256 with issuer and audience", v: both, token: sign(t, jwt.SigningMethodHS256, secret, "", claims(withIss)),
			want: Claims{Tenant: "acme", SessionID: "s1", Subject: "c1", Scopes: []string{"openid", ScopeManage}}},
		{name: "RS256 by kid", v: jwksOnly, token: sign(t, jwt.SigningMethodRS256, k.rsa, "rsa1", claims(nil)),
			want: Claims{Tenant: "acme", SessionID: "s1", Subject: "c1", Scopes: []string{"openid", ScopeManage}}},
		{name: "ES256 by kid", v: jwksOnly, token: sign(t, jwt.SigningMethodES256, k.ec, "ec1", claims(nil)),
			want: Claims{Tenant: "acme", SessionID: "s1", Subject: "c1", Scopes: []string{"openid", ScopeManage}}},
		{name: "ES256 without kid", v: jwksOnly, token: sign(t, jwt.SigningMethodES256, k.ec, "", claims(nil)),
			want: Claims{Tenant: "acme", SessionID: "s1", Subject: "c1", Scopes: []string{"openid", ScopeManage}}},
		{name: "tenant from scope, anonymous", v: secretOnly,
			token: sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) {
				delete(c, "tenant")
				delete(c, "sub")
				c["scope"] = "tenant=acme openid"
			})),
			want: Claims{Tenant: "acme", SessionID: "s1", Scopes: []string{"openid"}}},
		{name: "scope as a list", v: secretOnly,
			token: sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) {
				c["scope"] = []string{"tenant=acme", ScopeManageLegacy}
			})),
			want: Claims{Tenant: "acme", SessionID: "s1", Subject: "c1", Scopes: []string{ScopeManageLegacy}}},

		{name: "alg none", v: both, token: noneToken(t), wantErr: "signing method none is invalid"},
		{name: "alg none, secret only", v: secretOnly, token: noneToken(t), wantErr: "signing method none is invalid"},
		{name: "expired", v: secretOnly, token: sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) {
			c["exp"] = time.Now().Add(-time.Minute).Unix()
		})), wantErr: "token is expired"},
		{name: "no exp", v: secretOnly, token: sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) {
			delete(c, "exp")
		})), wantErr: "exp claim is required"},
		{name: "issued in the future", v: secretOnly, token: sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) {
			c["iat"] = time.Now().Add(time.Hour).Unix()
		})), wantErr: "token used before issued"},
		{name: "not yet valid", v: secretOnly, token: sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) {
			c["nbf"] = time.Now().Add(time.Hour).Unix()
		})), wantErr: "token is not valid yet"},
		{name: "HS256 bad signature", v: secretOnly, token: sign(t, jwt.SigningMethodHS256, []byte("another secret"), "", claims(nil)),
			wantErr: "signature is invalid"},
		{name: "RS256 signed by another key", v: jwksOnly, token: sign(t, jwt.SigningMethodRS256, k.otherRSA, "rsa1", claims(nil)),
			wantErr: "verification error"},
		{name: "RS256 unknown kid", v: jwksOnly, token: sign(t, jwt.SigningMethodRS256, k.rsa, "nope", claims(nil)),
			wantErr: "could not read JWK"},
		{name: "RS256 token naming the EC key", v: jwksOnly, token: sign(t, jwt.SigningMethodRS256, k.rsa, "ec1", claims(nil)),
			wantErr: "does not match"},
		{name: "HS256 when only JWKS is configured", v: jwksOnly, token: sign(t, jwt.SigningMethodHS256, secret, "", claims(nil)),
			wantErr: "signing method HS256 is invalid"},
		{name: "RS256 when only a secret is configured", v: secretOnly, token: sign(t, jwt.SigningMethodRS256, k.rsa, "rsa1", claims(nil)),
			wantErr: "signing method RS256 is invalid"},
		{name: "HS384 is not accepted", v: both, token: sign(t, jwt.SigningMethodHS384, secret, "", claims(withIss)),
			wantErr: "signing method HS384 is invalid"},
		{name: "RS512 is not accepted", v: both, token: sign(t, jwt.SigningMethodRS512, k.rsa, "rsa1", claims(withIss)),
			wantErr: "signing method RS512 is invalid"},
		{name: "wrong issuer", v: both, token: sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) {
			withIss(c)
			c["iss"] = "https://evil.example"
		})), wantErr: "token has invalid issuer"},
		{name: "missing issuer", v: both, token: sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) {
			withIss(c)
			delete(c, "iss")
		})), wantErr: "iss claim is required"},
		{name: "wrong audience", v: both, token: sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) {
			withIss(c)
			c["aud"] = "other"
		})), wantErr: "token has invalid audience"},
		{name: "malformed", v: secretOnly, token: "not.a.jwt", wantErr: "token is malformed"},
		{name: "empty", v: secretOnly, token: "", wantErr: "token is malformed"},
		{name: "scope names another tenant", v: secretOnly, token: sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) {
			c["scope"] = "tenant=other"
		})), wantErr: `scope names tenant "other"`},
		{name: "scope of the wrong type", v: secretOnly, token: sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) {
			c["scope"] = 7
		})), wantErr: "token is malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.v.Verify(ctx, tt.token)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Verify accepted the token: %+v", got)
				}
				if !errors.Is(err, ErrInvalidToken) {
					t.Errorf("error %v does not wrap ErrInvalidToken", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.ExpiresAt.IsZero() {
				t.Error("ExpiresAt is zero")
			}
			got.ExpiresAt = time.Time{}
			if got.Tenant != tt.want.Tenant || got.SessionID != tt.want.SessionID || got.Subject != tt.want.Subject || !slices.Equal(got.Scopes, tt.want.Scopes) {
				t.Errorf("claims = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestVerifyJWKSURL(t *testing.T) {
	k := newKeys(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(k.jwks)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := NewVerifier(ctx, Config{JWKS: srv.URL + "/jwks.json", HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		token string
		ok    bool
	}{
		{"RS256", sign(t, jwt.SigningMethodRS256, k.rsa, "rsa1", claims(nil)), true},
		{"ES256", sign(t, jwt.SigningMethodES256, k.ec, "ec1", claims(nil)), true},
		{"RS256 other key", sign(t, jwt.SigningMethodRS256, k.otherRSA, "rsa1", claims(nil)), false},
		{"HS256", sign(t, jwt.SigningMethodHS256, secret, "", claims(nil)), false},
		{"alg none", noneToken(t), false},
		{"expired", sign(t, jwt.SigningMethodES256, k.ec, "ec1", claims(func(c jwt.MapClaims) {
			c["exp"] = time.Now().Add(-time.Minute).Unix()
		})), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(ctx, tt.token)
			if tt.ok && (err != nil || c.Tenant != "acme") {
				t.Fatalf("Verify = %+v, %v; want acme's claims", c, err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", c, err)
			}
		})
	}
}

func TestNewVerifierErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.json")
	if err := os.WriteFile(empty, []byte(`{"keys": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.json")
	if err := os.WriteFile(garbage, []byte(`not json`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"nothing configured", Config{}, "a JWT secret or a JWKS is required"},
		{"missing file", Config{JWKS: filepath.Join(dir, "nope.json")}, "read JWKS file"},
		{"no keys", Config{JWKS: empty}, "holds no keys"},
		{"not JSON", Config{JWKS: garbage}, "garbage.json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewVerifier(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewVerifier error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestMint(t *testing.T) {
	v, err := NewVerifier(context.Background(), Config{Secret: secret, Issuer: "sessionctx", Audience: "api"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Mint(secret, TokenSpec{Tenant: "acme", SessionID: "s1", CustomerID: "c1", Scopes: []string{ScopeManage}, TTL: time.Minute, Issuer: "sessionctx", Audience: "api"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Tenant != "acme" || c.SessionID != "s1" || c.Subject != "c1" || !c.CanManage() || !c.HasScope(ScopeManage) || c.HasScope("other") {
		t.Errorf("claims = %+v", c)
	}
	if d := time.Until(c.ExpiresAt); d <= 0 || d > time.Minute {
		t.Errorf("expires in %s, want within a minute", d)
	}

	anon, err := Mint(secret, TokenSpec{Tenant: "acme", SessionID: "s2"})
	if err != nil {
		t.Fatal(err)
	}
	secretOnly, _ := NewVerifier(context.Background(), Config{Secret: secret})
	c, err = secretOnly.Verify(context.Background(), anon)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "" || len(c.Scopes) != 0 || c.CanManage() {
		t.Errorf("anonymous claims = %+v", c)
	}
	if d := time.Until(c.ExpiresAt); d < 59*time.Minute || d > time.Hour {
		t.Errorf("default TTL: expires in %s, want an hour", d)
	}
	if _, err := Mint(nil, TokenSpec{}); err == nil {
		t.Error("Mint with an empty secret succeeded")
	}
	if _, err := v.Verify(context.Background(), anon); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token without iss/aud accepted by a verifier that checks them: %v", err)
	}
}

func TestLegacyScope(t *testing.T) {
	c := Claims{Scopes: []string{ScopeManageLegacy}}
	if !c.CanManage() {
		t.Error("legacy management scope is not accepted")
	}
	if (Claims{Scopes: []string{"sessioncontext.context_read"}}).CanManage() {
		t.Error("another scope is accepted as management")
	}
}
