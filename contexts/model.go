package contexts

import (
	"slices"
	"time"

	"github.com/sessionctx/sessionctx/events"
)

// Fold is the reference model of the lifecycle: it applies, one by one in
// event-time order (ties broken by event id), the events of tenant t that
// concern session sessionID (its own events and its customers' logouts that
// name no session) and returns the outcome. It is the specification the
// store is tested against; it keeps no history and knows nothing of delivery.
func Fold(t Tenant, sessionID string, evs []events.Event) Outcome {
	var mine []events.Event
	for _, e := range evs {
		if e.Tenant != t.Name {
			continue
		}
		if e.Data.SessionID == sessionID || (e.Type == events.CustomerLogout && e.Data.SessionID == "") {
			mine = append(mine, e)
		}
	}
	slices.SortFunc(mine, func(a, b events.Event) int {
		switch sa, sb := StampOf(a), StampOf(b); {
		case sa.Less(sb):
			return -1
		case sb.Less(sa):
			return 1
		}
		return 0
	})

	var (
		o          Outcome
		values     = map[Field]string{}
		loggedInAs = map[string]bool{}
		anonSeen   bool
		anonUntil  time.Time
		lastCart   time.Time
		lastChange time.Time
	)
	end := func(at time.Time) { o.Ended, o.EndedAt = true, at }
	for _, e := range mine {
		if o.Ended {
			break // ended is final: everything stamped later is ignored
		}
		for _, w := range writes(t, e) {
			values[w.Field] = w.Value
			lastChange = e.Time
		}
		switch e.Type {
		case events.AnonymousLogin, events.AnonymousRefreshed:
			anonSeen = true
			if exp := anonymousExpiry(t, e); exp.After(anonUntil) {
				anonUntil = exp
			}
		case events.AnonymousExpired:
			if !o.Customer {
				end(e.Time)
			}
		case events.CartCreated:
			if !o.HasCart {
				o.HasCart, o.CreatedAt = true, e.Time
			}
			lastCart = e.Time
		case events.CustomerLogin:
			o.Customer = true
			loggedInAs[e.Data.CustomerID] = true
		case events.CustomerLogout:
			if e.Data.SessionID != "" || loggedInAs[e.Data.CustomerID] {
				end(e.Time)
			}
		}
	}
	switch {
	case o.Customer:
		if t.CustomerIdleLimit > 0 {
			o.Until = lastChange.Add(t.CustomerIdleLimit)
		}
	case anonSeen:
		o.Until = anonUntil
	case o.HasCart:
		o.Until = lastCart.Add(t.AnonymousLifetime)
	}
	value := func(f Field) string {
		if v, ok := values[f]; ok {
			return v
		}
		return t.baseline(f)
	}
	o.CustomerID, o.SiteCode, o.Currency = value(FieldCustomerID), value(FieldSiteCode), value(FieldCurrency)
	o.CartID, o.TargetLocation, o.Language = value(FieldCartID), value(FieldTargetLocation), value(FieldLanguage)
	return o.Comparable()
}
