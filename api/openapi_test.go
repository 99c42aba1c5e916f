package api_test

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/sessionctx/sessionctx/api"
)

var echoParam = regexp.MustCompile(`:([A-Za-z]+)`)

// TestOpenAPIRoutes: every route we serve is in our document and vice versa,
// and every path of the reference document is served with the same methods.
func TestOpenAPIRoutes(t *testing.T) {
	v := newEnv(t)
	served := map[string]bool{}
	for _, r := range v.e.Routes() {
		served[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	own, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := own.Validate(context.Background()); err != nil {
		t.Fatalf("our document is not valid: %v", err)
	}
	documented := operations(own)
	for op := range served {
		if !documented[op] {
			t.Errorf("%s is served but not in api/openapi.yaml", op)
		}
	}
	for op := range documented {
		if !served[op] {
			t.Errorf("%s is in api/openapi.yaml but not served", op)
		}
	}
	ref := reference(t, false)
	refOps := operations(ref)
	if len(refOps) != 8 {
		t.Errorf("the reference has %d operations, want 8", len(refOps))
	}
	for op := range refOps {
		if !served[op] {
			t.Errorf("%s of the reference is not served", op)
		}
	}
	// Same success codes as the reference.
	for path, item := range ref.Paths.Map() {
		for method, op := range item.Operations() {
			ownOp := own.Paths.Find(path).GetOperation(method)
			for code := range op.Responses.Map() {
				if strings.HasPrefix(code, "2") && ownOp.Responses.Value(code) == nil {
					t.Errorf("%s %s: the reference answers %s, our document does not", method, path, code)
				}
			}
			for code := range ownOp.Responses.Map() {
				if strings.HasPrefix(code, "2") && op.Responses.Value(code) == nil {
					t.Errorf("%s %s: our document answers %s, the reference does not", method, path, code)
				}
			}
		}
	}
}

func operations(doc *openapi3.T) map[string]bool {
	ops := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			ops[method+" "+path] = true
		}
	}
	return ops
}

// TestReferenceContextSchemaIsStricterThanItsExample documents why the tests
// loosen the reference's Context schema: it requires every attribute value to
// be an object, but its own example holds a string, ContextAttribute allows
// string values, and DESIGN.md allows any JSON value but null.
func TestReferenceContextSchemaIsStricterThanItsExample(t *testing.T) {
	ref := reference(t, false)
	schema := ref.Components.Schemas["Context"].Value
	example := map[string]any{"customObject": map[string]any{"property1": "value1"}, "customProperty": "customValue"}
	if err := schema.VisitJSON(example); err == nil {
		t.Error("the reference's Context schema accepts its example now: drop the patch in loadReference")
	}
	patched := reference(t, true)
	if err := patched.Components.Schemas["Context"].Value.VisitJSON(example); err != nil {
		t.Errorf("patched Context schema refuses the example: %v", err)
	}
}

// TestValidatorCatchesMismatches makes sure the response validation that
// every test relies on does refuse wrong answers.
func TestValidatorCatchesMismatches(t *testing.T) {
	d := loadDocs(t)
	if d.ref == nil {
		t.Skip(errNoReference) // it counts how many of the two documents refuse an answer
	}
	json := http.Header{"Content-Type": []string{"application/json"}}
	for _, tt := range []struct {
		name, method, target string
		res                  response
		errors               int // how many documents refuse it
	}{
		{"good context", http.MethodGet, "/session-context/acme/context/s1",
			response{Code: 200, Header: json, Raw: []byte(`{"sessionId":"s1","context":{"a":"b"},"metadata":{"version":1}}`)}, 0},
		{"version is a string", http.MethodGet, "/session-context/acme/context/s1",
			response{Code: 200, Header: json, Raw: []byte(`{"sessionId":"s1","metadata":{"version":"1"}}`)}, 2},
		{"unknown field", http.MethodGet, "/session-context/acme/me/context",
			response{Code: 200, Header: json, Raw: []byte(`{"sessionId":"s1","extra":1,"metadata":{"version":1}}`)}, 1},
		{"code is a string", http.MethodGet, "/session-context/acme/context/s1",
			response{Code: 404, Header: json, Raw: []byte(`{"code":"404","message":"x","sessionId":"s1"}`)}, 2},
		{"201 body not a string", http.MethodPost, "/session-context/acme/me/context/attributes",
			response{Code: 201, Header: json, Raw: []byte(`{"key":"k"}`)}, 2},
		{"undocumented status", http.MethodGet, "/session-context/acme/context/s1",
			response{Code: 418, Header: json, Raw: []byte(`{"code":418,"message":"teapot"}`)}, 1},
		{"unknown path", http.MethodGet, "/session-context/acme/other", response{Code: 404, Header: json, Raw: []byte(`{}`)}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			errs := d.check(tt.method, tt.target, tt.res)
			if len(errs) != tt.errors {
				t.Errorf("%d documents refused the answer, want %d: %v", len(errs), tt.errors, errs)
			}
		})
	}
}

func TestReferenceOperations(t *testing.T) {
	// The eight reference operations, as DESIGN.md lists them.
	want := []string{
		"DELETE /session-context/{tenant}/context/{sessionId}/attributes/{attributeName}",
		"DELETE /session-context/{tenant}/me/context/attributes/{attributeName}",
		"GET /session-context/{tenant}/context/{sessionId}",
		"GET /session-context/{tenant}/me/context",
		"PATCH /session-context/{tenant}/me/context",
		"POST /session-context/{tenant}/context/{sessionId}/attributes",
		"POST /session-context/{tenant}/me/context/attributes",
		"PUT /session-context/{tenant}/context/{sessionId}",
	}
	ref := reference(t, false)
	var got []string
	for op := range operations(ref) {
		got = append(got, op)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("reference operations %v, want %v", got, want)
	}
}
