package contexts

import (
	"time"

	"github.com/sessionctx/sessionctx/events"
)

// Field names a stamped value of a session.
type Field string

// The stamped fields. Their names are also the Redis hash fields.
const (
	FieldCustomerID     Field = "cid"
	FieldSiteCode       Field = "site"
	FieldCurrency       Field = "cur"
	FieldCartID         Field = "cart"
	FieldTargetLocation Field = "loc"
	FieldLanguage       Field = "lang"
)

// fieldWrite is one value an event writes.
type fieldWrite struct {
	Field Field
	Value string
}

// writes returns the values an event writes, per the contract: a field the
// event does not carry is not written. Logins write profile values, else the
// tenant's default site.
func writes(t Tenant, e events.Event) []fieldWrite {
	d := e.Data
	var w []fieldWrite
	carried := func(f Field, v string) {
		if v != "" {
			w = append(w, fieldWrite{f, v})
		}
	}
	switch e.Type {
	case events.AnonymousLogin:
		carried(FieldSiteCode, d.SiteCode)
		carried(FieldCurrency, d.Currency)
		carried(FieldLanguage, d.Language)
		carried(FieldTargetLocation, d.TargetLocation)
	case events.CartCreated:
		carried(FieldCartID, d.CartID)
		carried(FieldSiteCode, d.SiteCode)
		carried(FieldCurrency, d.Currency)
	case events.CustomerLogin:
		var p events.Profile
		if d.Customer != nil {
			p = *d.Customer
		}
		w = append(w,
			fieldWrite{FieldCustomerID, d.CustomerID},
			fieldWrite{FieldSiteCode, or(p.PreferredSite, t.Site.Code)},
			fieldWrite{FieldCurrency, or(p.PreferredCurrency, t.Site.Currency)},
			fieldWrite{FieldLanguage, or(p.PreferredLanguage, t.Site.Language)},
			fieldWrite{FieldTargetLocation, or(p.ShippingCountry, p.BillingCountry, t.Site.HomeBase)},
		)
	}
	return w
}

// anonymousExpiry is when the anonymous token of an anonymous.login or
// anonymous.refreshed event expires.
func anonymousExpiry(t Tenant, e events.Event) time.Time {
	if e.Data.ExpiresAt != nil {
		return *e.Data.ExpiresAt
	}
	return e.Time.Add(t.AnonymousLifetime)
}

func or(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// baseline returns the tenant's value of field f for a context that has no
// stamped value of it ("" for fields without one).
func (t Tenant) baseline(f Field) string {
	switch f {
	case FieldSiteCode:
		return t.Site.Code
	case FieldCurrency:
		return t.Site.Currency
	case FieldLanguage:
		return t.Site.Language
	case FieldTargetLocation:
		return t.Site.HomeBase
	}
	return ""
}
