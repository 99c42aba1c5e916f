package contexts

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sessionctx/sessionctx/events"
)

// Site is a tenant's default site: the baseline values of a new context.
type Site struct {
	Code     string `json:"code"`
	Currency string `json:"currency"`
	// HomeBase is the site's home country, used as targetLocation.
	HomeBase string `json:"homeBase"`
	Language string `json:"language"`
}

// Tenant is one tenant's configuration.
type Tenant struct {
	Name string
	Site Site
	// AnonymousLifetime is how long an anonymous token lives when its event
	// names no expiry.
	AnonymousLifetime time.Duration
	// CustomerIdleLimit ends the visibility of a customer context this long
	// after its last change; zero means customer contexts never time out.
	CustomerIdleLimit time.Duration
}

// ErrUnknownTenant is returned for a tenant that is not configured when no
// "*" entry serves every tenant.
var ErrUnknownTenant = errors.New("tenant is not configured")

// Tenants is the set of configured tenants, with an optional "*" fallback.
type Tenants struct {
	byName   map[string]Tenant
	fallback *Tenant
}

// DefaultTenants serves every tenant with site "main", EUR, DE, English and a
// one hour anonymous lifetime.
func DefaultTenants() Tenants {
	return Tenants{fallback: &Tenant{
		Site:              Site{Code: "main", Currency: "EUR", HomeBase: "DE", Language: "en"},
		AnonymousLifetime: time.Hour,
	}}
}

// Lookup returns the configuration of the named tenant.
func (ts Tenants) Lookup(name string) (Tenant, error) {
	if !events.ValidTenant(name) {
		return Tenant{}, fmt.Errorf("%w: %q is not a valid tenant name", ErrUnknownTenant, name)
	}
	if t, ok := ts.byName[name]; ok {
		return t, nil
	}
	if ts.fallback != nil {
		t := *ts.fallback
		t.Name = name
		return t, nil
	}
	return Tenant{}, fmt.Errorf("%w: %q", ErrUnknownTenant, name)
}

type tenantFile struct {
	Tenants map[string]struct {
		Site              Site   `json:"site"`
		AnonymousLifetime string `json:"anonymousLifetime"`
		CustomerIdleLimit string `json:"customerIdleLimit"`
	} `json:"tenants"`
}

// LoadTenants reads a tenants file:
//
//	{"tenants": {"*": {"site": {"code": "main", "currency": "EUR", "homeBase": "DE", "language": "en"},
//	                   "anonymousLifetime": "1h", "customerIdleLimit": ""}}}
func LoadTenants(path string) (Tenants, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Tenants{}, fmt.Errorf("read tenants file: %w", err)
	}
	return ParseTenants(raw)
}

// ParseTenants parses the contents of a tenants file (see LoadTenants).
func ParseTenants(raw []byte) (Tenants, error) {
	var f tenantFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return Tenants{}, fmt.Errorf("tenants file: %w", err)
	}
	if len(f.Tenants) == 0 {
		return Tenants{}, errors.New("tenants file: \"tenants\" is empty")
	}
	ts := Tenants{byName: map[string]Tenant{}}
	var err error
	for name, c := range f.Tenants {
		if name != "*" && !events.ValidTenant(name) {
			return Tenants{}, fmt.Errorf("tenants file: %q is not a valid tenant name", name)
		}
		if c.Site.Code == "" || c.Site.Currency == "" {
			return Tenants{}, fmt.Errorf("tenants file: tenant %q: site.code and site.currency are required", name)
		}
		t := Tenant{Name: name, Site: c.Site, AnonymousLifetime: time.Hour}
		if c.AnonymousLifetime != "" {
			if t.AnonymousLifetime, err = positiveDuration(c.AnonymousLifetime); err != nil {
				return Tenants{}, fmt.Errorf("tenants file: tenant %q: anonymousLifetime: %w", name, err)
			}
		}
		if c.CustomerIdleLimit != "" {
			if t.CustomerIdleLimit, err = positiveDuration(c.CustomerIdleLimit); err != nil {
				return Tenants{}, fmt.Errorf("tenants file: tenant %q: customerIdleLimit: %w", name, err)
			}
		}
		if name == "*" {
			t.Name = ""
			ts.fallback = &t
			continue
		}
		ts.byName[name] = t
	}
	return ts, nil
}

func positiveDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q must be positive", s)
	}
	return d, nil
}
