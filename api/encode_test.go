package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
)

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// encodeCases are sessions whose encoding must match encoding/json's.
func encodeCases() []struct {
	name string
	sess contexts.Session
} {
	created := time.Date(2024, 3, 9, 14, 5, 7, 123456789, time.UTC)
	berlin := time.FixedZone("CET", 3600)
	many := map[string]json.RawMessage{}
	for i := range 40 {
		many[fmt.Sprintf("k%02d", 39-i)] = raw(fmt.Sprint(i))
	}
	return []struct {
		name string
		sess contexts.Session
	}{
		{"only the session id", contexts.Session{SessionID: "s1"}},
		{"empty", contexts.Session{}},
		{"all fields", contexts.Session{
			SessionID: "s-1.A_b", CustomerID: "c-42", SiteCode: "main", Currency: "EUR", CartID: "cart-1",
			TargetLocation: "DE", Language: "de",
			Context:  map[string]json.RawMessage{"b": raw(`"x"`), "a": raw(`{"n":1}`)},
			Metadata: contexts.Metadata{Version: 7, CreatedAt: created, ModifiedAt: created.Add(1500 * time.Millisecond)},
		}},
		{"times in another zone, no milliseconds", contexts.Session{SessionID: "s1",
			Metadata: contexts.Metadata{Version: 1, CreatedAt: time.Date(2024, 1, 1, 0, 30, 0, 0, berlin), ModifiedAt: time.Date(2024, 1, 1, 0, 30, 0, 999999, berlin)}}},
		{"only modifiedAt, odd years", contexts.Session{SessionID: "s1",
			Metadata: contexts.Metadata{Version: -3, ModifiedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		{"year 1", contexts.Session{SessionID: "s1",
			Metadata: contexts.Metadata{Version: 1 << 62, CreatedAt: time.Date(1, 1, 1, 0, 0, 0, 1e6, time.UTC)}}},
		{"empty context omitted", contexts.Session{SessionID: "s1", Context: map[string]json.RawMessage{}}},
		{"strings needing escapes", contexts.Session{
			SessionID: `q"uote\back`, CustomerID: "<script>&amp;</script>", SiteCode: "ctl\x00\x01\b\f\n\r\t\x1f\x7f",
			Currency: "é日本🎉", CartID: "ls\u2028ps\u2029", TargetLocation: "bad\xc3\x28utf8\xff", Language: "\xe2\x80",
		}},
		{"attribute values", contexts.Session{SessionID: "s1", Context: map[string]json.RawMessage{
			"string":      raw(`"plain"`),
			"quotes":      raw(`"say \"hi\" \\ \/ \b\f\n\r\t \u0001"`),
			"html":        raw(`"<b>&amp;</b> > <"`),
			"html in key": raw(`{"<k>&":"v"}`),
			"unicode":     raw(`"é日本🎉 \u00e9"`),
			"separators":  raw("\"a\u2028b\u2029c\""),
			"escaped sep": raw(`"\u2028\u003c"`),
			"nested":      raw(`{"a":{"b":[1,2,{"c":null}],"d":true},"e":false,"f":-1.5e10}`),
			"array":       raw(`[1,"two",[3],{"four":4}]`),
			"number":      raw(`0.125`),
			"bool":        raw(`true`),
			"bad utf8":    raw("\"x\xffy\xc3\x28\""),
			"lone e2":     raw("\"\xe2\x80\""),
			"nil":         nil,
		}}},
		{"attribute values with whitespace", contexts.Session{SessionID: "s1", Context: map[string]json.RawMessage{
			"object": raw(" {\n\t\"a\" : [ 1 , 2 ] ,\r\n \"b\" : \"x  y\\\" z\" } \n"),
			"string": raw("  \"spaced < out\"\t"),
			"number": raw("\n42\n"),
			"empty":  raw(`{ }`),
			"array":  raw(`[ ]`),
		}}},
		{"keys needing escapes, in order", contexts.Session{SessionID: "s1", Context: map[string]json.RawMessage{
			`a"b`: raw(`1`), `<tag>`: raw(`2`), `k&`: raw(`3`), "ä": raw(`4`), "B": raw(`5`), "a": raw(`6`),
			"A10": raw(`7`), "A2": raw(`8`), "sep\u2028": raw(`9`), "bad\xff": raw(`10`), "ctl\n": raw(`11`), "": raw(`12`),
		}}},
		{"more attributes than the stack holds", contexts.Session{SessionID: "s1", Context: many}},
	}
}

func TestAppendSessionMatchesEncodingJSON(t *testing.T) {
	for _, tt := range encodeCases() {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(tt.sess)
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendSession([]byte("prefix"), tt.sess)
			if err != nil {
				t.Fatalf("appendSession: %v", err)
			}
			got, ok := bytes.CutPrefix(got, []byte("prefix"))
			if !ok || !bytes.Equal(got, want) {
				t.Errorf("appendSession:\n got %s\nwant %s", got, want)
			}
			// What the API wrote: the encoder's output is compact already.
			var compact bytes.Buffer
			if err := json.Compact(&compact, want); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, compact.Bytes()) {
				t.Errorf("appendSession:\n got %s\nwant %s (compacted)", got, compact.Bytes())
			}
		})
	}
}

func TestAppendTime(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	times := []time.Time{
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 23, 30, 0, 5e5, time.FixedZone("", -90*60)), time.Now(),
	}
	for range 10000 {
		times = append(times, time.Unix(rng.Int64N(400e9)-100e9, rng.Int64N(1e9)).In(time.FixedZone("", 60*(rng.IntN(1680)-840))))
	}
	for _, tm := range times {
		want := `,"t":"` + tm.UTC().Format(events.TimeFormat) + `"`
		if got := appendTime(nil, `,"t":`, tm); string(got) != want {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
	if got := appendTime([]byte("x"), `,"t":`, time.Time{}); string(got) != "x" {
		t.Errorf("appendTime(zero) = %s, want nothing appended", got)
	}
}

func TestAppendSessionInvalidAttribute(t *testing.T) {
	for _, v := range []json.RawMessage{raw(`{`), raw(`{"a":1}x`), raw(`nul`), raw(`"unterminated`), {}, raw("  "), raw(`'x'`)} {
		sess := contexts.Session{SessionID: "s1", Context: map[string]json.RawMessage{"a": v}}
		if _, err := json.Marshal(sess); err == nil {
			t.Fatalf("json.Marshal accepted %q", v)
		}
		if _, err := appendSession(nil, sess); err == nil {
			t.Errorf("appendSession accepted %q", v)
		}
	}
}

// TestWriteSessionMatchesJSON compares whole answers, headers included, with
// what c.JSON writes: plain, pretty, in debug mode and for a session whose
// attribute is not valid JSON.
func TestWriteSessionMatchesJSON(t *testing.T) {
	bad := contexts.Session{SessionID: "s1", Context: map[string]json.RawMessage{"a": raw(`{`)}}
	for _, tt := range encodeCases() {
		for _, target := range []string{"/x", "/x?pretty", "/x?a=1&pretty=0", "/x?a=1"} {
			for _, debug := range []bool{false, true} {
				compareAnswers(t, tt.sess, target, debug)
			}
		}
	}
	compareAnswers(t, bad, "/x", false)
}

func compareAnswers(t *testing.T, sess contexts.Session, target string, debug bool) {
	t.Helper()
	answer := func(write func(echo.Context) error) (*httptest.ResponseRecorder, error) {
		e := echo.New()
		e.Debug = debug
		rec := httptest.NewRecorder()
		err := write(e.NewContext(httptest.NewRequest(http.MethodGet, target, nil), rec))
		return rec, err
	}
	want, wantErr := answer(func(c echo.Context) error { return c.JSON(http.StatusOK, sess) })
	got, gotErr := answer(func(c echo.Context) error { return writeSession(c, sess) })
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%s debug=%v: error %v, want %v", target, debug, gotErr, wantErr)
	}
	if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) || fmt.Sprint(got.Header()) != fmt.Sprint(want.Header()) {
		t.Errorf("%s debug=%v:\n got %d %v %q\nwant %d %v %q", target, debug,
			got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
	}
}

// FuzzAppendRaw: an attribute value encodes as encoding/json encodes a
// json.RawMessage, or is refused when encoding/json refuses it.
func FuzzAppendRaw(f *testing.F) {
	for _, s := range []string{`{"a":[1,2]}`, ` "x<y" `, "\"\u2028\"", `"\\\""`, `{ }`, `{`, "\"\xff\"", `[1, "a b", {"c" : null}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		want, wantErr := json.Marshal(json.RawMessage(v))
		got, gotErr := appendRaw(nil, v)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("appendRaw(%q): error %v, json.Marshal's %v", v, gotErr, wantErr)
		}
		if wantErr == nil && !bytes.Equal(got, want) {
			t.Fatalf("appendRaw(%q) = %q, json.Marshal %q", v, got, want)
		}
	})
}

// FuzzAppendString: strings encode as encoding/json encodes them.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"plain", `q"\`, "<&>", "\x00\x1f\x7f", "é\u2028\u2029", "\xff\xc3\x28", "\xe2\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %q, json.Marshal %q", s, got, want)
		}
	})
}

// benchSession is a typical storefront context.
func benchSession() contexts.Session {
	created := time.Date(2024, 3, 9, 14, 5, 7, 123456789, time.UTC)
	return contexts.Session{
		SessionID: "0f8e6c2a-4b1d-4c7e-9a35-2d6f1b8e7c90", CustomerID: "c-10042", SiteCode: "main", Currency: "EUR",
		CartID: "cart-8f2c1e", TargetLocation: "DE", Language: "de",
		Context: map[string]json.RawMessage{
			"channel":    raw(`"web"`),
			"consent":    raw(`{"analytics":true,"marketing":false}`),
			"lastViewed": raw(`["sku-1","sku-2","sku-3"]`),
			"segment":    raw(`"returning"`),
			"note":       raw(`"Größe M & Farbe <blau>"`),
		},
		Metadata: contexts.Metadata{Version: 12, CreatedAt: created, ModifiedAt: created.Add(time.Minute)},
	}
}

func BenchmarkEncodeSession(b *testing.B) {
	sess := benchSession()
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = appendSession(buf[:0], sess); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(sess); err != nil {
				b.Fatal(err)
			}
		}
	})
	// What c.JSON did: an encoder over the response.
	b.Run("json.Encoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := json.NewEncoder(io.Discard).Encode(sess); err != nil {
				b.Fatal(err)
			}
		}
	})
}
