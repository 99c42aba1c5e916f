package api_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/sessionctx/sessionctx/api"
	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/internal/auth"
)

// TestAuthentication covers 401 and 403 on every endpoint.
func TestAuthentication(t *testing.T) {
	v := newEnv(t)
	v.anonymous("s1")
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"tenant": tenantName, "sid": "s1", "scope": auth.ScopeManage, "exp": time.Now().Add(time.Hour).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	refusals := []struct {
		name    string
		headers []string
		status  int
		want    string
	}{
		{"missing", nil, http.StatusUnauthorized, "Authorization header"},
		{"not bearer", []string{"Authorization", "Basic dXNlcjpwYXNz"}, http.StatusUnauthorized, "Bearer <token>"},
		{"empty bearer", []string{"Authorization", "Bearer "}, http.StatusUnauthorized, "Bearer <token>"},
		{"malformed", bearer("not-a-jwt"), http.StatusUnauthorized, "malformed"},
		{"expired", bearer(signed(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) {
			c["exp"] = time.Now().Add(-time.Minute).Unix()
		}))), http.StatusUnauthorized, "expired"},
		{"bad signature", bearer(signed(t, jwt.SigningMethodHS256, []byte("wrong"), claims(nil))), http.StatusUnauthorized, "signature is invalid"},
		{"saas secret is not the JWT secret", bearer(signed(t, jwt.SigningMethodHS256, saasSecret, claims(nil))), http.StatusUnauthorized, "signature is invalid"},
		{"alg none", bearer(none), http.StatusUnauthorized, "none"},
		{"other tenant", bearer(signed(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) {
			c["tenant"] = "other"
		}))), http.StatusForbidden, "tenant"},
		{"no tenant", bearer(signed(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) {
			delete(c, "tenant")
		}))), http.StatusForbidden, "no tenant"},
	}
	endpoints := []struct {
		method, path string
		body         any
	}{
		{http.MethodGet, "/session-context/acme/context/s1", nil},
		{http.MethodPut, "/session-context/acme/context/s1", map[string]any{"metadata": map[string]any{"version": 1}}},
		{http.MethodPost, "/session-context/acme/context/s1/attributes", map[string]any{"key": "k", "value": "v"}},
		{http.MethodDelete, "/session-context/acme/context/s1/attributes/k", nil},
		{http.MethodGet, "/session-context/acme/me/context", nil},
		{http.MethodPatch, "/session-context/acme/me/context", map[string]any{"metadata": map[string]any{"version": 1}}},
		{http.MethodPost, "/session-context/acme/me/context/attributes", map[string]any{"key": "k", "value": "v"}},
		{http.MethodDelete, "/session-context/acme/me/context/attributes/k", nil},
	}
	for _, ep := range endpoints {
		for _, r := range refusals {
			t.Run(ep.method+" "+ep.path+"/"+r.name, func(t *testing.T) {
				v.t = t
				res := v.do(ep.method, ep.path, ep.body, r.headers...)
				v.expect(res, r.status, r.want)
				if r.status == http.StatusUnauthorized && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without WWW-Authenticate: Bearer")
				}
			})
		}
	}

	// Management endpoints need the scope; shopper endpoints need a session.
	shopperToken := shopper(t, "s1", "")
	serviceToken := service(t)
	for _, ep := range endpoints {
		t.Run(ep.method+" "+ep.path+"/scope or session", func(t *testing.T) {
			v.t = t
			if strings.Contains(ep.path, "/me/") {
				v.expect(v.do(ep.method, ep.path, ep.body, serviceToken...), http.StatusForbidden, "no session (sid)")
			} else {
				v.expect(v.do(ep.method, ep.path, ep.body, shopperToken...), http.StatusForbidden, auth.ScopeManage)
			}
		})
	}
	v.t = t
	bad := bearer(mint(t, secret, auth.TokenSpec{SessionID: "s{1}"}))
	v.expect(v.do(http.MethodGet, "/session-context/acme/me/context", nil, bad...), http.StatusForbidden, "sid")
}

func TestScopesAndTenantClaims(t *testing.T) {
	v := newEnv(t)
	v.anonymous("s1")
	for _, tt := range []struct {
		name   string
		claims jwt.MapClaims
		status int
	}{
		{"management scope", jwt.MapClaims{"tenant": tenantName, "scope": "openid sessioncontext.context_manage"}, http.StatusOK},
		{"legacy management scope", jwt.MapClaims{"tenant": tenantName, "scope": "session_context.context_manage"}, http.StatusOK},
		{"tenant from scope, as Emporix writes it", jwt.MapClaims{"scope": "tenant=acme sessioncontext.context_manage"}, http.StatusOK},
		{"tenant from scope, another tenant", jwt.MapClaims{"scope": "tenant=other sessioncontext.context_manage"}, http.StatusForbidden},
		{"another scope", jwt.MapClaims{"tenant": tenantName, "scope": "sessioncontext.context_read"}, http.StatusForbidden},
		{"no scope", jwt.MapClaims{"tenant": tenantName}, http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v.t = t
			tt.claims["exp"] = time.Now().Add(time.Hour).Unix()
			res := v.do(http.MethodGet, "/session-context/acme/context/s1", nil, bearer(signed(t, jwt.SigningMethodHS256, secret, tt.claims))...)
			v.expect(res, tt.status, "")
		})
	}
}

func TestUnknownTenant(t *testing.T) {
	tenants, err := contexts.ParseTenants([]byte(`{"tenants": {"acme": {"site": {"code": "main", "currency": "EUR", "homeBase": "DE", "language": "de"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	v := newEnv(t, func(c *api.Config) { c.Tenants = tenants })
	tok := bearer(mint(t, secret, auth.TokenSpec{Tenant: "other", Scopes: []string{auth.ScopeManage}}))
	res := v.do(http.MethodGet, "/session-context/other/context/s1", nil, tok...)
	v.expect(res, http.StatusNotFound, "tenant is not configured")
	if res.str("sessionId") != "s1" {
		t.Errorf("404 without sessionId: %s", res.Raw)
	}
	v.expect(v.do(http.MethodGet, "/session-context/acme/context/s1", nil, service(t)...), http.StatusNotFound, "not found")
}

func TestGetContext(t *testing.T) {
	v := newEnv(t)
	v.customer("cust", "c1")
	v.anonymous("anon")
	v.migrated("mig", "c2")
	v.ended("gone")

	for _, tt := range []struct {
		name, sid, customer string
		status              int
	}{
		{"customer context", "cust", "c1", http.StatusOK},
		{"anonymous context", "anon", "", http.StatusOK},
		{"migrated context", "mig", "c2", http.StatusOK},
		{"unknown", "nope", "", http.StatusNotFound},
		{"ended", "gone", "", http.StatusNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v.t = t
			res := v.do(http.MethodGet, "/session-context/acme/context/"+tt.sid, nil, service(t)...)
			v.expect(res, tt.status, "")
			switch tt.status {
			case http.StatusOK:
				if res.str("sessionId") != tt.sid || res.str("customerId") != tt.customer || res.version() < 1 {
					t.Errorf("context %s", res.Raw)
				}
				if res.str("siteCode") != "main" || res.str("currency") != "EUR" || res.str("targetLocation") != "DE" {
					t.Errorf("tenant defaults missing: %s", res.Raw)
				}
			case http.StatusNotFound:
				if res.str("sessionId") != tt.sid {
					t.Errorf("404 without sessionId: %s", res.Raw)
				}
			}
		})
	}
	v.t = t
	v.expect(v.do(http.MethodGet, "/session-context/acme/context/bad%7Bid%7D", nil, service(t)...), http.StatusBadRequest, "sessionId")
	v.expect(v.do(http.MethodGet, "/session-context/acme/context/"+strings.Repeat("x", 129), nil, service(t)...), http.StatusBadRequest, "sessionId")
	// Path parameters are decoded once, whether or not the path has a raw form.
	v.expect(v.do(http.MethodGet, "/session-context/acme/context/c%75st", nil, service(t)...), http.StatusOK, "")
	v.expect(v.do(http.MethodGet, "/session-context/%61cme/context/cust", nil, service(t)...), http.StatusOK, "")
	upper := bearer(mint(t, secret, auth.TokenSpec{Tenant: "ACME", Scopes: []string{auth.ScopeManage}}))
	v.expect(v.do(http.MethodGet, "/session-context/ACME/context/cust", nil, upper...), http.StatusBadRequest, "tenant must match")
}

func TestGetMyContext(t *testing.T) {
	v := newEnv(t)
	v.anonymous("anon")
	v.customer("cust", "c1")
	v.migrated("mig", "c2")
	v.ended("gone")
	for _, tt := range []struct {
		name, sid, sub string
		status         int
	}{
		{"anonymous token, anonymous context", "anon", "", http.StatusOK},
		{"customer token, anonymous context", "anon", "c9", http.StatusOK},
		{"customer token, own context", "cust", "c1", http.StatusOK},
		{"customer token, migrated context", "mig", "c2", http.StatusOK},
		{"anonymous token, migrated context", "mig", "", http.StatusNotFound},
		{"anonymous token, customer context", "cust", "", http.StatusNotFound},
		{"another customer's token", "cust", "c2", http.StatusNotFound},
		{"no context yet", "nope", "", http.StatusNotFound},
		{"ended", "gone", "c-ended", http.StatusNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v.t = t
			res := v.do(http.MethodGet, "/session-context/acme/me/context", nil, shopper(t, tt.sid, tt.sub)...)
			v.expect(res, tt.status, "")
			if res.str("sessionId") != tt.sid {
				t.Errorf("sessionId %q, want %q: %s", res.str("sessionId"), tt.sid, res.Raw)
			}
		})
	}
}

func TestPatchMyContext(t *testing.T) {
	v := newEnv(t)
	v.anonymous("s1")
	v.migrated("mig", "c2")
	tok := shopper(t, "s1", "")
	const path = "/session-context/acme/me/context"

	res := v.do(http.MethodPatch, path+"?upsert=true", map[string]any{
		"sessionId": "ignored", "cartId": 12345, "customerId": []int{1}, "metadata": map[string]any{"version": 1, "createdAt": "junk"},
		"siteCode": "b2b", "currency": "CHF", "targetLocation": "CH", "language": "fr",
		"context": map[string]any{"a": map[string]any{"x": 1}, "b": "text", "c": 3, "d": []any{true}},
	}, tok...)
	v.expect(res, http.StatusNoContent, "")
	got := v.get("s1")
	if got.version() != 2 || got.str("siteCode") != "b2b" || got.str("currency") != "CHF" || got.str("targetLocation") != "CH" ||
		got.str("language") != "fr" || got.str("cartId") != "" || got.str("customerId") != "" || len(got.context()) != 4 {
		t.Fatalf("after PATCH: %s", got.Raw)
	}

	// The version may be a string; context is replaced whole; absent fields stay.
	v.expect(v.do(http.MethodPatch, path, `{"metadata": {"version": "2"}, "context": {"e": "only"}}`, tok...), http.StatusNoContent, "")
	got = v.get("s1")
	if got.version() != 3 || got.str("currency") != "CHF" || len(got.context()) != 1 || got.context()["e"] != "only" {
		t.Fatalf("after second PATCH: %s", got.Raw)
	}

	for _, tt := range []struct {
		name   string
		body   any
		status int
		want   string
	}{
		{"stale version", `{"metadata": {"version": 1}, "currency": "USD"}`, http.StatusConflict, "current version is 3"},
		{"no metadata", `{"currency": "USD"}`, http.StatusBadRequest, "metadata.version"},
		{"null metadata", `{"metadata": null}`, http.StatusBadRequest, "metadata.version"},
		{"no version", `{"metadata": {}}`, http.StatusBadRequest, "metadata.version"},
		{"metadata not an object", `{"metadata": 3}`, http.StatusBadRequest, "metadata"},
		{"fractional version", `{"metadata": {"version": 1.5}}`, http.StatusBadRequest, "metadata.version"},
		{"version not a number", `{"metadata": {"version": "three"}}`, http.StatusBadRequest, "metadata.version"},
		{"version is a bool", `{"metadata": {"version": true}}`, http.StatusBadRequest, "metadata.version"},
		{"negative version", `{"metadata": {"version": -1}}`, http.StatusBadRequest, "metadata.version"},
		{"siteCode not a string", `{"metadata": {"version": 3}, "siteCode": 5}`, http.StatusBadRequest, "siteCode"},
		{"language not a string", `{"metadata": {"version": 3}, "language": {}}`, http.StatusBadRequest, "language"},
		{"context not an object", `{"metadata": {"version": 3}, "context": [1]}`, http.StatusBadRequest, "context"},
		{"context value null", `{"metadata": {"version": 3}, "context": {"k": null}}`, http.StatusBadRequest, `context["k"]`},
		{"context key empty", `{"metadata": {"version": 3}, "context": {"": 1}}`, http.StatusBadRequest, "context key"},
		{"context key not printable", `{"metadata": {"version": 3}, "context": {"a\u0007": 1}}`, http.StatusBadRequest, "printable"},
		{"context value too big", fmt.Sprintf(`{"metadata": {"version": 3}, "context": {"k": "%s"}}`, strings.Repeat("x", 16<<10)), http.StatusBadRequest, "16384 bytes"},
		{"not JSON", `{"metadata": `, http.StatusBadRequest, "JSON"},
		{"an array", `[]`, http.StatusBadRequest, "JSON object"},
		{"null", `null`, http.StatusBadRequest, "JSON object"},
		{"two objects", `{"metadata": {"version": 3}} {}`, http.StatusBadRequest, "nothing after it"},
		{"empty", ``, http.StatusBadRequest, "request body is required"},
		{"too large", fmt.Sprintf(`{"metadata": {"version": 3}, "pad": "%s"}`, strings.Repeat("x", 256<<10)), http.StatusRequestEntityTooLarge, "262144 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v.t = t
			res := v.do(http.MethodPatch, path, tt.body, tok...)
			v.expect(res, tt.status, tt.want)
			if tt.status == http.StatusConflict {
				if res.str("sessionId") != "s1" || res.JSON["currentVersion"] != float64(3) {
					t.Errorf("409 body %s", res.Raw)
				}
			}
		})
	}
	v.t = t
	if got := v.get("s1"); got.version() != 3 {
		t.Errorf("refused PATCHes changed the context: %s", got.Raw)
	}

	// An anonymous token cannot edit a context that now belongs to a customer;
	// the customer can.
	res = v.do(http.MethodPatch, path, `{"metadata": {"version": 2}, "currency": "USD"}`, shopper(t, "mig", "")...)
	v.expect(res, http.StatusNotFound, "")
	if res.str("sessionId") != "mig" {
		t.Errorf("404 without sessionId: %s", res.Raw)
	}
	v.expect(v.do(http.MethodPatch, path, `{"metadata": {"version": 2}, "currency": "USD"}`, shopper(t, "mig", "c9")...), http.StatusNotFound, "")
	v.expect(v.do(http.MethodPatch, path, `{"metadata": {"version": 2}, "currency": "USD"}`, shopper(t, "mig", "c2")...), http.StatusNoContent, "")
	v.expect(v.do(http.MethodPatch, path, `{"metadata": {"version": 1}}`, shopper(t, "nope", "")...), http.StatusNotFound, "")
}

func TestPutContext(t *testing.T) {
	v := newEnv(t)
	v.anonymous("anon")
	v.customer("cust", "c1")
	v.ended("gone")
	svc := service(t)
	put := func(sid, query string, body any, headers ...[]string) response {
		v.t.Helper()
		return v.do(http.MethodPut, "/session-context/acme/context/"+sid+query, body, join(append([][]string{svc}, headers...)...)...)
	}

	// Replace: omitted fields are cleared.
	res := put("anon", "", map[string]any{
		"sessionId": "anon", "siteCode": "b2b", "cartId": "cart9", "currency": "USD",
		"context": map[string]any{"k": "v"}, "metadata": map[string]any{"version": 1},
	})
	v.expect(res, http.StatusNoContent, "")
	got := v.get("anon")
	if got.version() != 2 || got.str("siteCode") != "b2b" || got.str("cartId") != "cart9" || got.str("currency") != "USD" ||
		got.str("language") != "" || got.str("targetLocation") != "" || got.context()["k"] != "v" {
		t.Fatalf("after PUT: %s", got.Raw)
	}
	v.expect(put("anon", "", `{"metadata": {"version": "2"}, "currency": "EUR"}`), http.StatusNoContent, "")
	if got := v.get("anon"); got.version() != 3 || got.str("siteCode") != "" || got.str("cartId") != "" || len(got.context()) != 0 {
		t.Fatalf("after second PUT: %s", got.Raw)
	}

	// A customer's context needs the customer's saas-token.
	v.expect(put("cust", "", `{"metadata": {"version": 1}, "currency": "USD"}`), http.StatusBadRequest, "saas-token")
	v.expect(put("cust", "", `{"metadata": {"version": 1}}`, saasToken(t, "c2")), http.StatusForbidden, "another customer")
	v.expect(put("cust", "", `{"metadata": {"version": 1}}`, []string{"saas-token", "junk"}), http.StatusUnauthorized, "saas-token")
	noTenant := signed(t, jwt.SigningMethodHS256, saasSecret, jwt.MapClaims{"sub": "c1", "exp": time.Now().Add(time.Hour).Unix()})
	v.expect(put("cust", "", `{"metadata": {"version": 1}}`, []string{"saas-token", noTenant}), http.StatusForbidden, "tenant")
	otherTenant := mint(t, saasSecret, auth.TokenSpec{Tenant: "globex", CustomerID: "c1"})
	v.expect(put("cust", "", `{"metadata": {"version": 1}}`, []string{"saas-token", otherTenant}), http.StatusForbidden, "tenant")
	v.expect(put("cust", "", `{"metadata": {"version": 1}, "customerId": "c2"}`, saasToken(t, "c2")), http.StatusBadRequest, "customerId")
	v.expect(put("cust", "", `{"metadata": {"version": 1}, "customerId": "c1", "currency": "USD"}`, saasToken(t, "c1")), http.StatusNoContent, "")
	if got := v.get("cust"); got.str("customerId") != "c1" || got.str("currency") != "USD" || got.version() != 2 {
		t.Fatalf("customer context after PUT: %s", got.Raw)
	}
	// A customerId cannot be given to an anonymous context.
	v.expect(put("anon", "", `{"metadata": {"version": 3}, "customerId": "c1"}`, saasToken(t, "c1")), http.StatusBadRequest, "customerId")

	// Upsert.
	v.expect(put("new1", "", `{"metadata": {"version": 0}}`), http.StatusNotFound, "")
	v.expect(put("new1", "?upsert=false", `{"metadata": {"version": 0}}`), http.StatusNotFound, "")
	v.expect(put("new1", "?upsert=true", `{"metadata": {"version": 0}, "currency": "GBP", "context": {"a": 1}}`), http.StatusNoContent, "")
	if got := v.get("new1"); got.str("customerId") != "" || got.str("currency") != "GBP" || got.context()["a"] != float64(1) || got.version() != 1 {
		t.Fatalf("upserted context: %s", got.Raw)
	}
	if res := v.do(http.MethodGet, "/session-context/acme/me/context", nil, shopper(t, "new1", "")...); res.Code != http.StatusOK {
		t.Errorf("upserted anonymous context not visible to its anonymous token: %d %s", res.Code, res.Raw)
	}
	v.expect(put("new2", "?upsert=true", `{"metadata": {"version": 0}, "customerId": "c7"}`), http.StatusBadRequest, "saas-token")
	v.expect(put("new2", "?upsert=true", `{"metadata": {"version": 0}, "customerId": "c7"}`, saasToken(t, "c8")), http.StatusForbidden, "another customer")
	v.expect(put("new2", "?upsert=true", `{"metadata": {"version": 0}, "customerId": "c7"}`, saasToken(t, "c7")), http.StatusNoContent, "")
	if got := v.get("new2"); got.str("customerId") != "c7" {
		t.Fatalf("upserted customer context: %s", got.Raw)
	}
	res = put("gone", "?upsert=true", `{"metadata": {"version": 0}}`)
	v.expect(res, http.StatusConflict, "ended")
	if res.str("sessionId") != "gone" {
		t.Errorf("409 without sessionId: %s", res.Raw)
	}
	if res := v.do(http.MethodGet, "/session-context/acme/context/gone", nil, svc...); res.Code != http.StatusNotFound {
		t.Errorf("ended session resurrected: %d %s", res.Code, res.Raw)
	}

	for _, tt := range []struct {
		name   string
		body   any
		status int
		want   string
	}{
		{"stale version", `{"metadata": {"version": 1}}`, http.StatusConflict, "current version is 3"},
		{"no version", `{"currency": "EUR"}`, http.StatusBadRequest, "metadata.version"},
		{"other sessionId", `{"metadata": {"version": 3}, "sessionId": "other"}`, http.StatusBadRequest, "sessionId"},
		{"sessionId not a string", `{"metadata": {"version": 3}, "sessionId": 7}`, http.StatusBadRequest, "sessionId"},
		{"cartId not a string", `{"metadata": {"version": 3}, "cartId": 7}`, http.StatusBadRequest, "cartId"},
		{"bad customerId", `{"metadata": {"version": 3}, "customerId": "a b"}`, http.StatusBadRequest, "customerId"},
		{"context value null", `{"metadata": {"version": 3}, "context": {"k": null}}`, http.StatusBadRequest, `context["k"]`},
		{"too many attributes", fmt.Sprintf(`{"metadata": {"version": 3}, "context": {%s}}`, manyAttrs(101)), http.StatusBadRequest, "at most 100 attributes"},
		{"context too big", fmt.Sprintf(`{"metadata": {"version": 3}, "context": {%s}}`, bigAttrs(5, 15<<10)), http.StatusBadRequest, "65536 bytes"},
		{"too large", fmt.Sprintf(`{"metadata": {"version": 3}, "pad": "%s"}`, strings.Repeat("x", 256<<10)), http.StatusRequestEntityTooLarge, "262144"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v.t = t
			res := put("anon", "", tt.body)
			v.expect(res, tt.status, tt.want)
			if tt.status == http.StatusConflict && (res.str("sessionId") != "anon" || res.JSON["currentVersion"] != float64(3)) {
				t.Errorf("409 body %s", res.Raw)
			}
		})
	}
	v.t = t
	if got := v.get("anon"); got.version() != 3 {
		t.Errorf("refused PUTs changed the context: %s", got.Raw)
	}
	// Exactly 100 attributes fit.
	v.expect(put("anon", "", fmt.Sprintf(`{"metadata": {"version": 3}, "context": {%s}}`, manyAttrs(100))), http.StatusNoContent, "")
}

func manyAttrs(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d": %d`, i, i)
	}
	return strings.Join(parts, ",")
}

func bigAttrs(n, size int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d": "%s"`, i, strings.Repeat("x", size))
	}
	return strings.Join(parts, ",")
}

func TestAttributes(t *testing.T) {
	v := newEnv(t)
	v.anonymous("s1")
	v.customer("cust", "c1")
	svc := service(t)
	me := shopper(t, "s1", "")
	const (
		mgmt = "/session-context/acme/context/s1/attributes"
		mine = "/session-context/acme/me/context/attributes"
	)

	res := v.do(http.MethodPost, mine, map[string]any{"key": "color", "value": "red"}, me...)
	v.expect(res, http.StatusCreated, "")
	if string(res.Raw) != `"color"`+"\n" && string(res.Raw) != `"color"` {
		t.Errorf("201 body %q, want the attribute name as a JSON string", res.Raw)
	}
	v.expect(v.do(http.MethodPost, mgmt, map[string]any{"key": "size", "value": map[string]any{"w": 1}}, svc...), http.StatusNoContent, "")
	v.expect(v.do(http.MethodPost, mgmt, map[string]any{"key": "color", "value": "blue"}, svc...), http.StatusNoContent, "")
	for _, name := range []string{"a/b", "100%", "x%41", "ü ñ", "?#"} {
		v.expect(v.do(http.MethodPost, mine, map[string]any{"key": name, "value": 1}, me...), http.StatusCreated, "")
	}
	got := v.get("s1")
	// Version 1 at creation, then one per POST.
	if got.context()["color"] != "blue" || got.version() != 9 || len(got.context()) != 7 {
		t.Fatalf("after POSTs: %s", got.Raw)
	}

	// Names in paths are URL-decoded exactly once.
	for _, tt := range []struct{ path, name string }{
		{mgmt + "/a%2Fb", "a/b"},
		{mine + "/100%25", "100%"},
		{mine + "/x%2541", "x%41"},
		{mgmt + "/%C3%BC%20%C3%B1", "ü ñ"},
		{mine + "/%3F%23", "?#"},
	} {
		t.Run("delete "+tt.name, func(t *testing.T) {
			v.t = t
			headers := me
			if strings.HasPrefix(tt.path, mgmt) {
				headers = svc
			}
			v.expect(v.do(http.MethodDelete, tt.path, nil, headers...), http.StatusNoContent, "")
			if _, ok := v.get("s1").context()[tt.name]; ok {
				t.Errorf("%q still there", tt.name)
			}
		})
	}
	v.t = t
	if got := v.get("s1"); len(got.context()) != 2 || got.version() != 14 {
		t.Fatalf("after DELETEs: %s", got.Raw)
	}

	for _, tt := range []struct {
		name, method, path string
		headers            []string
		body               any
		status             int
		want               string
	}{
		{"missing attribute, management", http.MethodDelete, mgmt + "/nope", svc, nil, http.StatusNotFound, "attribute not found"},
		{"missing attribute, mine", http.MethodDelete, mine + "/nope", me, nil, http.StatusNotFound, "attribute not found"},
		{"encoded once only", http.MethodDelete, mine + "/x%252541", me, nil, http.StatusNotFound, "attribute not found"},
		{"unknown session", http.MethodPost, "/session-context/acme/context/nope/attributes", svc, `{"key": "k", "value": 1}`, http.StatusNotFound, "not found"},
		{"unknown session, delete", http.MethodDelete, "/session-context/acme/context/nope/attributes/k", svc, nil, http.StatusNotFound, "not found"},
		{"another customer's context", http.MethodPost, mine, shopper(t, "cust", "c2"), `{"key": "k", "value": 1}`, http.StatusNotFound, "not found"},
		{"anonymous token on a customer's context", http.MethodDelete, mine + "/color", shopper(t, "cust", ""), nil, http.StatusNotFound, "not found"},
		{"null value", http.MethodPost, mine, me, `{"key": "k", "value": null}`, http.StatusBadRequest, "value"},
		{"no value", http.MethodPost, mgmt, svc, `{"key": "k"}`, http.StatusBadRequest, "value"},
		{"no key", http.MethodPost, mine, me, `{"value": 1}`, http.StatusBadRequest, "key is required"},
		{"key not a string", http.MethodPost, mine, me, `{"key": 1, "value": 1}`, http.StatusBadRequest, "key"},
		{"empty key", http.MethodPost, mine, me, `{"key": "", "value": 1}`, http.StatusBadRequest, "key must be 1 to 128"},
		{"long key", http.MethodPost, mine, me, fmt.Sprintf(`{"key": "%s", "value": 1}`, strings.Repeat("k", 129)), http.StatusBadRequest, "key must be 1 to 128"},
		{"control character in key", http.MethodPost, mgmt, svc, `{"key": "a\nb", "value": 1}`, http.StatusBadRequest, "printable"},
		{"value too big", http.MethodPost, mine, me, fmt.Sprintf(`{"key": "k", "value": "%s"}`, strings.Repeat("x", 16<<10)), http.StatusBadRequest, "16384 bytes"},
		{"body too large", http.MethodPost, mine, me, fmt.Sprintf(`{"key": "k", "value": "%s"}`, strings.Repeat("x", 256<<10)), http.StatusRequestEntityTooLarge, "262144"},
		{"long name in path", http.MethodDelete, mgmt + "/" + strings.Repeat("k", 129), svc, nil, http.StatusBadRequest, "attributeName"},
		{"control character in path", http.MethodDelete, mine + "/a%0Ab", me, nil, http.StatusBadRequest, "attributeName"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v.t = t
			res := v.do(tt.method, tt.path, tt.body, tt.headers...)
			v.expect(res, tt.status, tt.want)
			if tt.status == http.StatusNotFound && res.str("sessionId") == "" {
				t.Errorf("404 without sessionId: %s", res.Raw)
			}
		})
	}

	// The store's attribute count limit.
	v.t = t
	v.expect(v.do(http.MethodPut, "/session-context/acme/context/s1", fmt.Sprintf(`{"metadata": {"version": 14}, "context": {%s}}`, manyAttrs(100)), svc...), http.StatusNoContent, "")
	v.expect(v.do(http.MethodPost, mine, `{"key": "one-more", "value": 1}`, me...), http.StatusBadRequest, "at most 100 attributes")
	v.expect(v.do(http.MethodPost, mine, `{"key": "k1", "value": "replaced"}`, me...), http.StatusCreated, "")
}

// TestUnavailable: Redis unreachable answers 503 with Retry-After, never 500.
func TestUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()

	redis.SetLogger(quiet{}) // the dial failures are expected
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		addr  string
		setup func(v *env)
	}{
		{"closed port", closed, nil},
		{"stopped miniredis", mr.Addr(), func(v *env) {
			v.anonymous("s1")
			v.get("s1")
			mr.Close()
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rdb := redis.NewClient(&redis.Options{Addr: tt.addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: 500 * time.Millisecond})
			defer rdb.Close()
			v := newEnvWith(t, rdb, "", func(c *api.Config) { c.Ready = nil })
			if tt.setup != nil {
				tt.setup(v)
			}
			svc, me := service(t), shopper(t, "s1", "")
			for _, r := range []struct {
				method, path string
				headers      []string
				body         any
			}{
				{http.MethodGet, "/session-context/acme/context/s1", svc, nil},
				{http.MethodPut, "/session-context/acme/context/s1", svc, `{"metadata": {"version": 1}}`},
				{http.MethodPost, "/session-context/acme/context/s1/attributes", svc, `{"key": "k", "value": 1}`},
				{http.MethodDelete, "/session-context/acme/context/s1/attributes/k", svc, nil},
				{http.MethodGet, "/session-context/acme/me/context", me, nil},
				{http.MethodPatch, "/session-context/acme/me/context", me, `{"metadata": {"version": 1}}`},
				{http.MethodPost, "/session-context/acme/me/context/attributes", me, `{"key": "k", "value": 1}`},
				{http.MethodDelete, "/session-context/acme/me/context/attributes/k", me, nil},
				{http.MethodGet, "/readyz", nil, nil},
			} {
				res := v.do(r.method, r.path, r.body, r.headers...)
				v.expect(res, http.StatusServiceUnavailable, "")
				if res.Header.Get("Retry-After") == "" {
					t.Errorf("%s %s: 503 without Retry-After", r.method, r.path)
				}
			}
			// Client mistakes are still answered without the store.
			v.expect(v.do(http.MethodGet, "/session-context/acme/context/s1", nil), http.StatusUnauthorized, "")
			v.expect(v.do(http.MethodPatch, "/session-context/acme/me/context", `{}`, me...), http.StatusBadRequest, "metadata.version")
		})
	}
}

func TestOperations(t *testing.T) {
	v := newEnv(t)
	v.expect(v.do(http.MethodGet, "/healthz", nil), http.StatusOK, "")
	v.expect(v.do(http.MethodGet, "/readyz", nil), http.StatusOK, "")
	res := v.do(http.MethodGet, "/openapi.yaml", nil)
	v.expect(res, http.StatusOK, "")
	if string(res.Raw) != string(api.OpenAPI) {
		t.Error("/openapi.yaml does not serve the embedded document")
	}

	notReady := newEnv(t, func(c *api.Config) {
		c.Ready = func(context.Context) error { return fmt.Errorf("nats: no servers available") }
	})
	res = notReady.do(http.MethodGet, "/readyz", nil)
	notReady.expect(res, http.StatusServiceUnavailable, "nats")
	if res.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}

	// Metrics by route template and status.
	v.do(http.MethodGet, "/session-context/acme/context/nope", nil, service(t)...)
	v.do(http.MethodGet, "/session-context/acme/context/other", nil)
	res = v.do(http.MethodGet, "/metrics", nil)
	v.expect(res, http.StatusOK, "")
	for _, want := range []string{
		`sessionctx_http_requests_total{code="404",method="GET",route="/session-context/:tenant/context/:sessionId"} 1`,
		`sessionctx_http_requests_total{code="401",method="GET",route="/session-context/:tenant/context/:sessionId"} 1`,
		`sessionctx_http_request_duration_seconds_bucket{code="200",method="GET",route="/healthz",le="+Inf"} 1`,
	} {
		if !strings.Contains(string(res.Raw), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestUnmatched: unknown routes and methods answer the error body too.
func TestUnmatched(t *testing.T) {
	v := newEnv(t)
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodPatch, "/session-context/acme/context/s1", http.StatusMethodNotAllowed},
		{http.MethodPost, "/session-context/acme/me/context", http.StatusMethodNotAllowed},
	} {
		req := httptestRequest(tt.method, tt.path)
		rec := serve(v, req)
		if rec.Code != tt.status || !strings.Contains(rec.Body.String(), fmt.Sprintf(`"code":%d`, tt.status)) {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, rec.Code, rec.Body)
		}
	}
	res := v.do(http.MethodGet, "/metrics", nil)
	if !strings.Contains(string(res.Raw), `route="unmatched"`) {
		t.Error("unmatched requests are not labelled route=\"unmatched\"")
	}
}

// quiet discards go-redis's log.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func httptestRequest(method, path string) *http.Request {
	return httptest.NewRequest(method, path, nil)
}

func serve(v *env, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	v.e.ServeHTTP(rec, req)
	return rec
}
