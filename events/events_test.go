package events_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sessionctx/sessionctx/events"
)

var received = time.Date(2026, 12, 3, 10, 15, 0, 0, time.UTC)

func TestDecode(t *testing.T) {
	cases := []struct {
		name    string
		subject string
		body    string
		want    string // substring of the error; "" for success
		check   func(t *testing.T, e events.Event)
	}{
		{name: "cart created", subject: "cart.created.acme",
			body: `{"specversion":"1.0","id":"0b6b4e0e","source":"cart-service","type":"cart.created","time":"2026-12-03T10:15:00.123456Z","tenant":"acme","datacontenttype":"application/json","data":{"sessionId":"s-1","cartId":"c1","siteCode":"main","currency":"EUR","futureField":{"x":1}}}`,
			check: func(t *testing.T, e events.Event) {
				if e.Data.CartID != "c1" || e.Data.Currency != "EUR" || !e.Time.Equal(time.Date(2026, 12, 3, 10, 15, 0, 123e6, time.UTC)) {
					t.Errorf("decoded %+v", e)
				}
			}},
		{name: "missing time takes the receive time", subject: "anonymous.login.acme",
			body: `{"specversion":"1.0","id":"x","source":"s","type":"anonymous.login","tenant":"acme","data":{"sessionId":"s"}}`,
			check: func(t *testing.T, e events.Event) {
				if !e.Time.Equal(received) {
					t.Errorf("time = %s, want %s", e.Time, received)
				}
			}},
		{name: "logout without session", subject: "customer.logout.acme",
			body: `{"specversion":"1.0","id":"x","source":"s","type":"customer.logout","tenant":"acme","data":{"customerId":"c1"}}`},
		{name: "expiresAt parsed", subject: "",
			body: `{"specversion":"1.0","id":"x","source":"s","type":"anonymous.refreshed","tenant":"acme","data":{"sessionId":"s","expiresAt":"2026-12-03T11:00:00+01:00"}}`,
			check: func(t *testing.T, e events.Event) {
				if e.Data.ExpiresAt == nil || !e.Data.ExpiresAt.Equal(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)) {
					t.Errorf("expiresAt = %v", e.Data.ExpiresAt)
				}
			}},
		{name: "not JSON", body: `{`, want: "not a JSON CloudEvent"},
		{name: "wrong specversion", body: `{"specversion":"0.3","id":"x","type":"cart.created","tenant":"acme","data":{}}`, want: "specversion"},
		{name: "missing id", body: `{"specversion":"1.0","type":"cart.created","tenant":"acme","data":{}}`, want: "id is missing"},
		{name: "id with commas and spaces is fine", body: `{"specversion":"1.0","id":"a, b","type":"cart.created","tenant":"acme","data":{"sessionId":"s","cartId":"c"}}`},
		{name: "id too long", body: `{"specversion":"1.0","id":"` + strings.Repeat("x", 257) + `","type":"cart.created","tenant":"acme","data":{}}`, want: "longer than 256"},
		{name: "cart with an unused odd customer id is fine", body: `{"specversion":"1.0","id":"x","type":"cart.created","tenant":"acme","data":{"sessionId":"s","cartId":"c","customerId":"John Doe"}}`},
		{name: "login with a customer id that cannot name a key", body: `{"specversion":"1.0","id":"x","type":"customer.login","tenant":"acme","data":{"sessionId":"s","customerId":"{x}"}}`, want: "data.customerId"},
		{name: "unknown type", body: `{"specversion":"1.0","id":"x","type":"cart.deleted","tenant":"acme","data":{}}`, want: "not a known event type"},
		{name: "bad tenant", body: `{"specversion":"1.0","id":"x","type":"cart.created","tenant":"ab","data":{}}`, want: "tenant \"ab\""},
		{name: "tenant too long", body: `{"specversion":"1.0","id":"x","type":"cart.created","tenant":"abcdefghijklmnopq","data":{}}`, want: "3 to 16"},
		{name: "subject tenant differs", subject: "cart.created.other",
			body: `{"specversion":"1.0","id":"x","type":"cart.created","tenant":"acme","data":{"sessionId":"s","cartId":"c"}}`, want: "does not match"},
		{name: "bad time", body: `{"specversion":"1.0","id":"x","type":"cart.created","tenant":"acme","time":"yesterday","data":{}}`, want: "not RFC 3339"},
		{name: "time far ahead", body: `{"specversion":"1.0","id":"x","type":"cart.created","tenant":"acme","time":"2026-12-03T10:21:00Z","data":{"sessionId":"s","cartId":"c"}}`, want: "ahead of the stream"},
		{name: "time slightly ahead is fine", body: `{"specversion":"1.0","id":"x","type":"cart.created","tenant":"acme","time":"2026-12-03T10:19:00Z","data":{"sessionId":"s","cartId":"c"}}`},
		{name: "missing data", body: `{"specversion":"1.0","id":"x","type":"cart.created","tenant":"acme"}`, want: "data is missing"},
		{name: "data of the wrong shape", body: `{"specversion":"1.0","id":"x","type":"cart.created","tenant":"acme","data":{"sessionId":5}}`, want: "data.sessionId must be a string, not a JSON number"},
		{name: "tenant of the wrong type", body: `{"specversion":"1.0","id":"x","type":"cart.created","tenant":7,"data":{}}`, want: "tenant must be a string"},
		{name: "missing session", body: `{"specversion":"1.0","id":"x","type":"cart.created","tenant":"acme","data":{"cartId":"c"}}`, want: "data.sessionId is required"},
		{name: "session id with braces", body: `{"specversion":"1.0","id":"x","type":"cart.created","tenant":"acme","data":{"sessionId":"{s}","cartId":"c"}}`, want: "data.sessionId \"{s}\""},
		{name: "missing cart", body: `{"specversion":"1.0","id":"x","type":"cart.created","tenant":"acme","data":{"sessionId":"s"}}`, want: "data.cartId is required"},
		{name: "login without customer", body: `{"specversion":"1.0","id":"x","type":"customer.login","tenant":"acme","data":{"sessionId":"s"}}`, want: "data.customerId is required"},
		{name: "logout without customer", body: `{"specversion":"1.0","id":"x","type":"customer.logout","tenant":"acme","data":{"sessionId":"s"}}`, want: "data.customerId is required"},
		{name: "xml content", body: `{"specversion":"1.0","id":"x","type":"cart.created","tenant":"acme","datacontenttype":"application/xml","data":{}}`, want: "datacontenttype"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := events.Decode([]byte(tc.body), tc.subject, received)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if tc.check != nil {
					tc.check(t, e)
				}
				return
			}
			if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode error = %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	exp := received.Add(time.Hour)
	in := events.Event{ID: "id-1", Type: events.CustomerLogin, Tenant: "acme", Source: "login", Time: received,
		Data: events.Data{SessionID: "s", CustomerID: "c", ExpiresAt: &exp, Customer: &events.Profile{PreferredCurrency: "CHF"}}}
	body, err := events.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := events.Decode(body, in.Subject(), received)
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != in.ID || out.Type != in.Type || !out.Time.Equal(in.Time) || out.Data.Customer.PreferredCurrency != "CHF" || !out.Data.ExpiresAt.Equal(exp) {
		t.Errorf("round trip: got %+v from %s", out, body)
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts encodes back to
// an event it accepts again, unchanged.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"x","type":"cart.created","tenant":"acme","time":"2026-12-03T10:15:00Z","data":{"sessionId":"s","cartId":"c"}}`), "cart.created.acme")
	f.Add([]byte(`{"specversion":"1.0","id":"y","type":"customer.logout","tenant":"acme","data":{"customerId":"c"}}`), "")
	f.Add([]byte(`{`), "x")
	f.Fuzz(func(t *testing.T, body []byte, subject string) {
		e, err := events.Decode(body, subject, received)
		if err != nil {
			if !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		again, err := events.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := events.Decode(again, e.Subject(), received)
		if err != nil {
			t.Fatalf("re-encoded event refused: %v\n%s", err, again)
		}
		if e2.ID != e.ID || !e2.Time.Equal(e.Time) || e2.Data.SessionID != e.Data.SessionID || e2.Type != e.Type {
			t.Fatalf("round trip changed the event: %+v -> %+v", e, e2)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	body := []byte(`{"specversion":"1.0","id":"0b6b4e0e-8a2c-4c1e-9d7e-2f6c3b1a9e01","source":"cart-service","type":"cart.created","time":"2026-12-03T10:15:00.123Z","tenant":"acme","datacontenttype":"application/json","data":{"sessionId":"c1-sess-1234-567890","cartId":"18edd05941f5f20000000000","siteCode":"main","currency":"EUR"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.Decode(body, "cart.created.acme", received); err != nil {
			b.Fatal(err)
		}
	}
}
