// Package contexts keeps shoppers' session contexts: the data model, the
// lifecycle rules (as a reference model and as atomic Redis operations) and
// the Redis store.
package contexts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sessionctx/sessionctx/events"
)

// Session is a session context as readers see it.
type Session struct {
	SessionID      string
	CustomerID     string
	SiteCode       string
	Currency       string
	CartID         string
	TargetLocation string
	Language       string
	// Context holds the custom attributes, each a raw JSON value.
	Context  map[string]json.RawMessage
	Metadata Metadata
}

// Metadata is the bookkeeping part of a session context.
type Metadata struct {
	// Version starts at 1 when the context becomes visible and goes up by one
	// on every change a reader can see.
	Version    int64
	CreatedAt  time.Time
	ModifiedAt time.Time
}

type sessionJSON struct {
	SessionID      string                     `json:"sessionId"`
	CustomerID     string                     `json:"customerId,omitempty"`
	SiteCode       string                     `json:"siteCode,omitempty"`
	Currency       string                     `json:"currency,omitempty"`
	CartID         string                     `json:"cartId,omitempty"`
	TargetLocation string                     `json:"targetLocation,omitempty"`
	Language       string                     `json:"language,omitempty"`
	Context        map[string]json.RawMessage `json:"context,omitempty"`
	Metadata       metadataJSON               `json:"metadata"`
}

type metadataJSON struct {
	Version    int64  `json:"version"`
	CreatedAt  string `json:"createdAt,omitempty"`
	ModifiedAt string `json:"modifiedAt,omitempty"`
}

// MarshalJSON writes the wire form: empty fields omitted, times in RFC 3339
// UTC with milliseconds, attributes in key order.
func (s Session) MarshalJSON() ([]byte, error) {
	return json.Marshal(sessionJSON{
		SessionID: s.SessionID, CustomerID: s.CustomerID, SiteCode: s.SiteCode, Currency: s.Currency,
		CartID: s.CartID, TargetLocation: s.TargetLocation, Language: s.Language, Context: s.Context,
		Metadata: metadataJSON{Version: s.Metadata.Version, CreatedAt: formatTime(s.Metadata.CreatedAt), ModifiedAt: formatTime(s.Metadata.ModifiedAt)},
	})
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(events.TimeFormat)
}

// AttributeNames returns the context's attribute names in order.
func (s Session) AttributeNames() []string {
	names := make([]string, 0, len(s.Context))
	for k := range s.Context {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Stamp orders writes: event time first, event id to break ties. API edits are
// stamped with the server's time at commit.
type Stamp struct {
	Time time.Time
	ID   string
}

// String is the stamp's sortable form: 9 base-36 digits of Unix
// milliseconds, then the id. Comparing two such strings compares the stamps.
func (s Stamp) String() string {
	t := strconv.FormatInt(s.Time.UnixMilli(), 36)
	return strings.Repeat("0", max(0, 9-len(t))) + t + s.ID
}

// Less reports whether s orders before o.
func (s Stamp) Less(o Stamp) bool {
	if !s.Time.Equal(o.Time) {
		return s.Time.Before(o.Time)
	}
	return s.ID < o.ID
}

// StampOf returns the stamp of an event. Its id is a digest of the event id:
// 10 hex digits, as good a tie-breaker as the id, whatever the id holds,
// and short enough to keep stored sessions compact.
func StampOf(e events.Event) Stamp {
	sum := sha256.Sum256([]byte(e.ID))
	return Stamp{Time: e.Time, ID: hex.EncodeToString(sum[:5])}
}

// Outcome is the lifecycle state of one session as the ordering guarantee
// defines it: what the reference model computes and what the store must hold,
// whatever the delivery order. Version and modification time are not part of
// it (they count processing).
type Outcome struct {
	// Ended is set once the session has ended (logout or anonymous expiry);
	// EndedAt is the event time of the end.
	Ended   bool
	EndedAt time.Time
	// HasCart is set once a cart exists: before it, there is only a pending
	// record and no context.
	HasCart bool
	// Customer is set once a customer has logged in to the session.
	Customer bool
	// Until is when the context stops being visible (anonymous token expiry
	// or customer idle limit); zero means never.
	Until time.Time
	// The visible values, tenant defaults filled in. Only meaningful while
	// the session has not ended.
	CustomerID, SiteCode, Currency, CartID, TargetLocation, Language string
	CreatedAt                                                        time.Time
}

// Visible reports whether the context can be read at now.
func (o Outcome) Visible(now time.Time) bool {
	return o.HasCart && !o.Ended && (o.Until.IsZero() || now.Before(o.Until))
}

// Comparable returns the outcome reduced to what the ordering guarantee
// covers: an ended session is only its end time.
func (o Outcome) Comparable() Outcome {
	if o.Ended {
		return Outcome{Ended: true, EndedAt: o.EndedAt}
	}
	return o
}
