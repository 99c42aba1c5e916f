package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/sessionctx/sessionctx/api"
	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/auth"
	"github.com/sessionctx/sessionctx/internal/testenv"
)

const tenantName = "acme"

// errNoReference: the Emporix document is not beside the clone, and
// EMPORIX_REFERENCE does not name it.
var errNoReference = errors.New("the Emporix reference document is not beside the clone (../shared/reference); set EMPORIX_REFERENCE to its path")

// referencePath is the Emporix document: EMPORIX_REFERENCE (then it must
// exist; .ci/run sets it), else the product folder beside the clone.
func referencePath() (path string, required bool) {
	if p := os.Getenv("EMPORIX_REFERENCE"); p != "" {
		return p, true
	}
	return "../../shared/reference/emporix-session-context.yaml", false
}

var (
	secret     = []byte("api-test-secret-0123456789")
	saasSecret = []byte("api-test-saas-secret-0123456789")
)

// docs are the OpenAPI documents every answer is validated against.
type docs struct {
	ref, own routers.Router
}

var (
	docsOnce sync.Once
	docsVal  docs
	docsErr  error
)

// loadReference loads the Emporix document. Its Context schema says every
// attribute value is an object, while its own example (and ContextAttribute,
// which allows strings) and DESIGN.md ("any JSON value but null") say
// otherwise; TestReferenceContextSchemaIsStricterThanItsExample shows it.
// With patch set, Context accepts any attribute value, as DESIGN.md decides.
// A fresh clone without the product folder has no reference: errNoReference.
func loadReference(patch bool) (*openapi3.T, error) {
	path, required := referencePath()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && !required {
		return nil, errNoReference
	}
	doc, err := openapi3.NewLoader().LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("reference document at %s: %w", path, err)
	}
	doc.Servers = nil
	// The reference's info.version is empty, which the router's validation
	// refuses; it does not matter for matching answers.
	doc.Info.Version = "reference"
	if patch {
		doc.Components.Schemas["Context"].Value.AdditionalProperties = openapi3.AdditionalProperties{Schema: &openapi3.SchemaRef{Value: &openapi3.Schema{}}}
	}
	return doc, nil
}

// reference loads the Emporix document for a test, which it skips on a
// clone without the product folder.
func reference(t *testing.T, patch bool) *openapi3.T {
	t.Helper()
	doc, err := loadReference(patch)
	if errors.Is(err, errNoReference) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func loadDocs(t testing.TB) docs {
	t.Helper()
	docsOnce.Do(func() {
		// Without the reference, answers are checked against our own
		// document only; the tests that need the reference skip.
		ref, err := loadReference(true)
		switch {
		case errors.Is(err, errNoReference):
		case err != nil:
			docsErr = err
			return
		default:
			if docsVal.ref, err = legacy.NewRouter(ref); err != nil {
				docsErr = err
				return
			}
		}
		own, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
		if err != nil {
			docsErr = err
			return
		}
		if err := own.Validate(context.Background()); err != nil {
			docsErr = err
			return
		}
		docsVal.own, docsErr = legacy.NewRouter(own)
	})
	if docsErr != nil {
		t.Fatalf("OpenAPI documents: %v", docsErr)
	}
	return docsVal
}

// env is one test's API on its own Redis key prefix.
type env struct {
	t      *testing.T
	e      *echo.Echo
	store  *contexts.Store
	tenant contexts.Tenant
	docs   docs
}

type option func(*api.Config)

func newEnv(t *testing.T, opts ...option) *env {
	t.Helper()
	r := testenv.Redis(t)
	return newEnvWith(t, r.Client, r.Prefix, opts...)
}

func newEnvWith(t *testing.T, rdb redis.UniversalClient, prefix string, opts ...option) *env {
	t.Helper()
	store := contexts.NewStore(rdb, contexts.Options{Prefix: prefix})
	v, err := auth.NewVerifier(context.Background(), auth.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	sv, err := auth.NewVerifier(context.Background(), auth.Config{Secret: saasSecret})
	if err != nil {
		t.Fatal(err)
	}
	tenants := contexts.DefaultTenants()
	cfg := api.Config{
		Store: store, Tenants: tenants, Verifier: v, SaasVerifier: sv,
		Registry: prometheus.NewRegistry(), StoreTimeout: 2 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&cfg)
	}
	tn, err := tenants.Lookup(tenantName)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, e: api.New(cfg), store: store, tenant: tn, docs: loadDocs(t)}
}

// response is an answer, its body decoded when it is JSON.
type response struct {
	Code   int
	Header http.Header
	Raw    []byte
	JSON   map[string]any
}

func (r response) str(k string) string {
	s, _ := r.JSON[k].(string)
	return s
}

// do sends a request and validates the answer against both OpenAPI
// documents. body is sent as is when it is a string or []byte, else as JSON.
func (v *env) do(method, target string, body any, headers ...string) response {
	v.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			v.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, target, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	v.e.ServeHTTP(rec, req)
	res := response{Code: rec.Code, Header: rec.Header(), Raw: rec.Body.Bytes()}
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(res.Raw, &res.JSON)
	}
	if res.Code == http.StatusInternalServerError || bytes.Contains(res.Raw, []byte("goroutine ")) {
		v.t.Errorf("%s %s answered %d: %s", method, target, res.Code, res.Raw)
	}
	v.validate(method, target, res)
	return res
}

// validate reports where an answer does not match the documents.
func (v *env) validate(method, target string, res response) {
	v.t.Helper()
	for _, err := range v.docs.check(method, target, res) {
		v.t.Error(err)
	}
}

// check validates an answer against the reference document (for the paths
// it has; statuses it does not list pass) and against our own document
// (every path and status must be there).
func (d docs) check(method, target string, res response) []error {
	// The routers match templates segment by segment: stand in a plain
	// attribute name for an encoded one.
	path, query, _ := strings.Cut(target, "?")
	if i := strings.LastIndex(path, "/attributes/"); i >= 0 {
		path = path[:i] + "/attributes/name"
	}
	u := "http://localhost" + path
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, doc := range []struct {
		name   string
		router routers.Router
		strict bool
	}{{"reference", d.ref, false}, {"own", d.own, true}} {
		if doc.router == nil {
			continue // no reference beside the clone
		}
		route, params, err := doc.router.FindRoute(req)
		if err != nil {
			if doc.strict || strings.HasPrefix(path, "/session-context/") {
				errs = append(errs, fmt.Errorf("%s %s: not in the %s document: %w", method, target, doc.name, err))
			}
			continue
		}
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
			Status:                 res.Code,
			Header:                 res.Header,
			Body:                   io.NopCloser(bytes.NewReader(res.Raw)),
			Options:                &openapi3filter.Options{IncludeResponseStatus: doc.strict, MultiError: true},
		}
		if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: answer %d %s does not match the %s document: %w", method, target, res.Code, res.Raw, doc.name, err))
		}
	}
	return errs
}

// expect checks the status and, for errors, the body's code and that its
// message contains want.
func (v *env) expect(res response, status int, want string) {
	v.t.Helper()
	if res.Code != status {
		v.t.Fatalf("status %d, want %d; body %s", res.Code, status, res.Raw)
	}
	if status >= 400 {
		if code, _ := res.JSON["code"].(float64); int(code) != status {
			v.t.Errorf("body code %v, want %d: %s", res.JSON["code"], status, res.Raw)
		}
		if !strings.Contains(res.str("message"), want) {
			v.t.Errorf("message %q does not contain %q", res.str("message"), want)
		}
	}
}

func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

func mint(t testing.TB, key []byte, spec auth.TokenSpec) string {
	t.Helper()
	if spec.Tenant == "" {
		spec.Tenant = tenantName
	}
	tok, err := auth.Mint(key, spec)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// service is a management token of the test tenant.
func service(t testing.TB) []string {
	return bearer(mint(t, secret, auth.TokenSpec{Scopes: []string{auth.ScopeManage}}))
}

// shopper is a token of session sid: a customer's when customer is set.
func shopper(t testing.TB, sid, customer string) []string {
	return bearer(mint(t, secret, auth.TokenSpec{SessionID: sid, CustomerID: customer}))
}

func saasToken(t testing.TB, customer string) []string {
	return []string{"saas-token", mint(t, saasSecret, auth.TokenSpec{CustomerID: customer})}
}

func signed(t testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func join(hs ...[]string) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h...)
	}
	return out
}

// anonymous creates a visible anonymous context.
func (v *env) anonymous(sid string) {
	v.t.Helper()
	if _, err := v.store.Edit(context.Background(), v.tenant, sid, contexts.Edit{Upsert: &contexts.Upsert{}}); err != nil {
		v.t.Fatal(err)
	}
}

// customer creates a visible customer context.
func (v *env) customer(sid, customer string) {
	v.t.Helper()
	if _, err := v.store.Edit(context.Background(), v.tenant, sid, contexts.Edit{Upsert: &contexts.Upsert{CustomerID: customer}}); err != nil {
		v.t.Fatal(err)
	}
}

func (v *env) apply(typ events.Type, data events.Data) {
	v.t.Helper()
	e := events.Event{ID: uuid.NewString(), Type: typ,
		Tenant: tenantName, Source: "test", Time: time.Now().UTC().Truncate(time.Millisecond), Data: data}
	if _, err := v.store.Apply(context.Background(), v.tenant, e); err != nil {
		v.t.Fatal(err)
	}
}

// migrated creates an anonymous context from a cart and logs a customer in.
func (v *env) migrated(sid, customer string) {
	v.t.Helper()
	v.apply(events.CartCreated, events.Data{SessionID: sid, CartID: "cart-" + sid})
	time.Sleep(2 * time.Millisecond)
	v.apply(events.CustomerLogin, events.Data{SessionID: sid, CustomerID: customer})
}

// ended creates a context and ends it with a logout.
func (v *env) ended(sid string) {
	v.t.Helper()
	v.customer(sid, "c-ended")
	time.Sleep(2 * time.Millisecond)
	v.apply(events.CustomerLogout, events.Data{SessionID: sid, CustomerID: "c-ended"})
}

// get reads a context through the management API.
func (v *env) get(sid string) response {
	v.t.Helper()
	res := v.do(http.MethodGet, "/session-context/acme/context/"+sid, nil, service(v.t)...)
	v.expect(res, http.StatusOK, "")
	return res
}

func (r response) version() int64 {
	md, _ := r.JSON["metadata"].(map[string]any)
	f, _ := md["version"].(float64)
	return int64(f)
}

func (r response) context() map[string]any {
	c, _ := r.JSON["context"].(map[string]any)
	return c
}
