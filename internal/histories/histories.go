// Package histories generates random but plausible event histories of many
// sessions, for tests that check the pipeline against the reference model and
// for benchmarks.
package histories

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sessionctx/sessionctx/events"
)

// Config shapes a generated history.
type Config struct {
	Tenant    string
	Sessions  int
	Customers int // size of the customer pool that logins draw from
	// Events happen within [Start, Start+Span). Times are whole seconds, so
	// ties (broken by event id) are common.
	Start time.Time
	Span  time.Duration
}

// Generate returns the events of cfg.Sessions sessions in no particular
// order. Each session gets some of: anonymous login, refreshes, a cart (or
// two), customer logins, anonymous expiry, logout; each customer gets some
// logouts naming no session.
func Generate(r *rand.Rand, cfg Config) []events.Event {
	g := generator{r: r, cfg: cfg}
	for i := range cfg.Sessions {
		g.session(fmt.Sprintf("sess-%d-%d", i, r.IntN(1e6)))
	}
	for c := range cfg.Customers {
		for range g.r.IntN(3) {
			g.add(events.CustomerLogout, g.when(), events.Data{CustomerID: customer(c)})
		}
	}
	return g.evs
}

func customer(i int) string { return fmt.Sprintf("cust-%d", i) }

type generator struct {
	r   *rand.Rand
	cfg Config
	evs []events.Event
	n   int
}

func (g *generator) when() time.Time {
	return g.cfg.Start.Truncate(time.Second).Add(time.Duration(g.r.Int64N(int64(g.cfg.Span/time.Second))) * time.Second).UTC()
}

func (g *generator) chance(p float64) bool { return g.r.Float64() < p }

func (g *generator) pick(vs ...string) string { return vs[g.r.IntN(len(vs))] }

func (g *generator) add(t events.Type, at time.Time, d events.Data) {
	g.n++
	g.evs = append(g.evs, events.Event{
		ID: fmt.Sprintf("%08x-%d", g.r.Uint32(), g.n), Type: t, Tenant: g.cfg.Tenant, Source: "histories", Time: at, Data: d,
	})
}

func (g *generator) session(sid string) {
	if g.chance(0.8) {
		d := events.Data{SessionID: sid}
		if g.chance(0.5) {
			d.SiteCode, d.Currency = g.pick("main", "uk", "ch"), g.pick("EUR", "GBP", "CHF")
		}
		if g.chance(0.3) {
			d.Language, d.TargetLocation = g.pick("en", "de", "fr"), g.pick("DE", "GB", "CH")
		}
		at := g.when()
		if g.chance(0.5) {
			exp := at.Add(time.Duration(10+g.r.IntN(120)) * time.Minute)
			d.ExpiresAt = &exp
		}
		g.add(events.AnonymousLogin, at, d)
	}
	for range g.r.IntN(3) {
		d := events.Data{SessionID: sid}
		at := g.when()
		if g.chance(0.5) {
			exp := at.Add(time.Duration(10+g.r.IntN(120)) * time.Minute)
			d.ExpiresAt = &exp
		}
		g.add(events.AnonymousRefreshed, at, d)
	}
	for range 1 + g.r.IntN(2) {
		if g.chance(0.85) {
			d := events.Data{SessionID: sid, CartID: fmt.Sprintf("cart-%d", g.r.IntN(1e6))}
			if g.chance(0.5) {
				d.SiteCode, d.Currency = g.pick("main", "uk"), g.pick("EUR", "GBP")
			}
			if g.chance(0.2) {
				d.CustomerID = customer(g.r.IntN(max(g.cfg.Customers, 1)))
			}
			g.add(events.CartCreated, g.when(), d)
		}
	}
	if g.cfg.Customers > 0 && g.chance(0.5) {
		c := customer(g.r.IntN(g.cfg.Customers))
		for range 1 + g.r.IntN(2) {
			d := events.Data{SessionID: sid, CustomerID: c}
			if g.chance(0.6) {
				d.Customer = &events.Profile{
					PreferredCurrency: g.pick("", "EUR", "USD"), PreferredSite: g.pick("", "main", "us"),
					PreferredLanguage: g.pick("", "en", "de"), ShippingCountry: g.pick("", "US"), BillingCountry: g.pick("", "FR"),
				}
			}
			g.add(events.CustomerLogin, g.when(), d)
		}
		if g.chance(0.15) { // a second customer on a shared device
			other := customer(g.r.IntN(g.cfg.Customers))
			g.add(events.CustomerLogin, g.when(), events.Data{SessionID: sid, CustomerID: other})
		}
	}
	for g.chance(0.25) {
		g.add(events.AnonymousExpired, g.when(), events.Data{SessionID: sid})
	}
	for g.chance(0.15) {
		g.add(events.CustomerLogout, g.when(), events.Data{SessionID: sid, CustomerID: customer(g.r.IntN(max(g.cfg.Customers, 1)))})
	}
}

// SessionIDs returns the distinct session ids that evs name, in first-seen order.
func SessionIDs(evs []events.Event) []string {
	seen := map[string]bool{}
	var ids []string
	for _, e := range evs {
		if sid := e.Data.SessionID; sid != "" && !seen[sid] {
			seen[sid] = true
			ids = append(ids, sid)
		}
	}
	return ids
}
