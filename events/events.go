// Package events defines the lifecycle events that sessionctx consumes: their
// CloudEvents envelope, validating decoding and a publisher helper.
package events

import (
	"errors"
	"fmt"
	"strings"
	"time"

	// A drop-in for encoding/json that decodes an event in a quarter of the
	// time: decoding was a quarter of the worker's CPU.
	json "github.com/goccy/go-json"
)

// Type is the CloudEvents type of a lifecycle event.
type Type string

// The six lifecycle event types of the contract.
const (
	AnonymousLogin     Type = "anonymous.login"
	AnonymousRefreshed Type = "anonymous.refreshed"
	AnonymousExpired   Type = "anonymous.expired"
	CartCreated        Type = "cart.created"
	CustomerLogin      Type = "customer.login"
	CustomerLogout     Type = "customer.logout"
)

// Types lists every known event type.
var Types = []Type{AnonymousLogin, AnonymousRefreshed, AnonymousExpired, CartCreated, CustomerLogin, CustomerLogout}

// Known reports whether t is one of the six lifecycle types.
func (t Type) Known() bool {
	for _, k := range Types {
		if k == t {
			return true
		}
	}
	return false
}

// MaxFutureSkew is how far an event's time may lie ahead of the stream's
// receive time before the event is refused.
const MaxFutureSkew = 5 * time.Minute

// ValidTenant reports whether name is a well-formed tenant name:
// ^[a-z][a-z0-9]+$, 3 to 16 characters.
func ValidTenant(name string) bool {
	if len(name) < 3 || len(name) > 16 || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// ValidSessionID reports whether id is a well-formed session id:
// ^[A-Za-z0-9._-]{1,128}$ (braces would break Redis hash tags).
func ValidSessionID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// ValidCustomerID reports whether id is a well-formed customer id: 1 to 128
// printable ASCII characters without spaces, braces or commas, since it
// names Redis keys and hash fields.
func ValidCustomerID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' || c == '{' || c == '}' || c == ',' {
			return false
		}
	}
	return true
}

// ErrInvalid marks an event that can never be applied. Errors wrapping it
// name what is wrong; such messages belong in the dead-letter stream.
var ErrInvalid = errors.New("invalid event")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Profile is the customer profile that a customer.login event may carry.
type Profile struct {
	PreferredCurrency string `json:"preferredCurrency,omitempty"`
	PreferredSite     string `json:"preferredSite,omitempty"`
	PreferredLanguage string `json:"preferredLanguage,omitempty"`
	ShippingCountry   string `json:"shippingCountry,omitempty"`
	BillingCountry    string `json:"billingCountry,omitempty"`
}

// Data is the payload of every event type; each type uses some of its fields.
type Data struct {
	SessionID      string     `json:"sessionId,omitempty"`
	CartID         string     `json:"cartId,omitempty"`
	CustomerID     string     `json:"customerId,omitempty"`
	SiteCode       string     `json:"siteCode,omitempty"`
	Currency       string     `json:"currency,omitempty"`
	Language       string     `json:"language,omitempty"`
	TargetLocation string     `json:"targetLocation,omitempty"`
	ExpiresAt      *time.Time `json:"expiresAt,omitempty"`
	Customer       *Profile   `json:"customer,omitempty"`
}

// Event is a decoded, validated lifecycle event.
type Event struct {
	ID     string
	Type   Type
	Tenant string
	Source string
	// Time is the event time in UTC, truncated to milliseconds.
	Time time.Time
	Data Data
}

// Subject is the NATS subject of the event: "<type>.<tenant>".
func (e Event) Subject() string { return string(e.Type) + "." + e.Tenant }

// envelope is the CloudEvents 1.0 structured JSON form.
type envelope struct {
	SpecVersion     string `json:"specversion"`
	ID              string `json:"id"`
	Source          string `json:"source"`
	Type            Type   `json:"type"`
	Time            string `json:"time,omitempty"`
	Tenant          string `json:"tenant"`
	DataContentType string `json:"datacontenttype,omitempty"`
	Data            *Data  `json:"data"`
}

// TimeFormat is how times are written: RFC 3339, UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Encode returns the CloudEvents structured JSON form of e.
func Encode(e Event) ([]byte, error) {
	env := envelope{
		SpecVersion: "1.0", ID: e.ID, Source: e.Source, Type: e.Type, Tenant: e.Tenant,
		DataContentType: "application/json", Data: &e.Data,
	}
	if !e.Time.IsZero() {
		env.Time = e.Time.UTC().Format(TimeFormat)
	}
	return json.Marshal(env)
}

// Decode parses and validates a message body. subject is the message's subject
// without any deployment prefix ("cart.created.acme"), or "" to skip the
// subject check; received is the stream's receive time, which stands in for a
// missing event time. Every error wraps ErrInvalid.
func Decode(body []byte, subject string, received time.Time) (Event, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return Event{}, invalid("%s must be a %s, not a JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
		}
		return Event{}, invalid("body is not a JSON CloudEvent: %v", err)
	}
	if env.SpecVersion != "1.0" {
		return Event{}, invalid("specversion must be \"1.0\", got %q", env.SpecVersion)
	}
	if env.ID == "" {
		return Event{}, invalid("id is missing")
	}
	if len(env.ID) > 256 {
		return Event{}, invalid("id is longer than 256 bytes")
	}
	if !env.Type.Known() {
		return Event{}, invalid("type %q is not a known event type", env.Type)
	}
	if !ValidTenant(env.Tenant) {
		return Event{}, invalid("tenant %q must match ^[a-z][a-z0-9]+$ with 3 to 16 characters", env.Tenant)
	}
	if subject != "" && subject != string(env.Type)+"."+env.Tenant {
		return Event{}, invalid("subject %q does not match type %q and tenant %q of the envelope", subject, env.Type, env.Tenant)
	}
	if ct := env.DataContentType; ct != "" && !strings.HasPrefix(ct, "application/json") {
		return Event{}, invalid("datacontenttype %q is not application/json", ct)
	}
	ev := Event{ID: env.ID, Type: env.Type, Tenant: env.Tenant, Source: env.Source}
	switch {
	case env.Time != "":
		t, err := time.Parse(time.RFC3339Nano, env.Time)
		if err != nil {
			return Event{}, invalid("time %q is not RFC 3339", env.Time)
		}
		ev.Time = t
	case !received.IsZero():
		ev.Time = received
	default:
		return Event{}, invalid("time is missing")
	}
	ev.Time = ev.Time.UTC().Truncate(time.Millisecond)
	if ev.Time.Year() < 2000 {
		return Event{}, invalid("time %s is before the year 2000", ev.Time.Format(TimeFormat))
	}
	if !received.IsZero() && ev.Time.After(received.Add(MaxFutureSkew)) {
		return Event{}, invalid("time %s is more than %s ahead of the stream's receive time %s",
			ev.Time.Format(TimeFormat), MaxFutureSkew, received.UTC().Format(TimeFormat))
	}
	if env.Data == nil {
		return Event{}, invalid("data is missing")
	}
	ev.Data = *env.Data
	if err := ev.validate(); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// validate checks the per-type required fields of the payload.
func (e *Event) validate() error {
	d := &e.Data
	if e.Type == CustomerLogout {
		if d.CustomerID == "" {
			return invalid("data.customerId is required for %s", e.Type)
		}
		if d.SessionID != "" && !ValidSessionID(d.SessionID) {
			return invalid("data.sessionId %q must match ^[A-Za-z0-9._-]{1,128}$", d.SessionID)
		}
	} else {
		if d.SessionID == "" {
			return invalid("data.sessionId is required for %s", e.Type)
		}
		if !ValidSessionID(d.SessionID) {
			return invalid("data.sessionId %q must match ^[A-Za-z0-9._-]{1,128}$", d.SessionID)
		}
	}
	// A customer id names Redis keys where it is used: logins and logouts.
	// cart.created may carry one, unused.
	if (e.Type == CustomerLogin || e.Type == CustomerLogout) && d.CustomerID != "" && !ValidCustomerID(d.CustomerID) {
		return invalid("data.customerId %q must be 1 to 128 printable characters without spaces, braces or commas", d.CustomerID)
	}
	switch e.Type {
	case CartCreated:
		if d.CartID == "" {
			return invalid("data.cartId is required for %s", e.Type)
		}
	case CustomerLogin:
		if d.CustomerID == "" {
			return invalid("data.customerId is required for %s", e.Type)
		}
	}
	if d.ExpiresAt != nil {
		t := d.ExpiresAt.UTC().Truncate(time.Millisecond)
		d.ExpiresAt = &t
	}
	return nil
}
