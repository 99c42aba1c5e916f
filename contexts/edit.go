package contexts

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
)

// AccessKind says whose token makes a request.
type AccessKind int

// The kinds of access.
const (
	// AccessService is a back-office token with the management scope: it may
	// edit any context of its tenant.
	AccessService AccessKind = iota
	// AccessAnonymous is a shopper's anonymous token: it reaches its session
	// only while no customer has logged in to it.
	AccessAnonymous
	// AccessCustomer is a shopper's customer token: it reaches its session
	// while its customerId is absent or equals the token's subject.
	AccessCustomer
)

// Access identifies the caller of an edit.
type Access struct {
	Kind       AccessKind
	CustomerID string
}

// CanSee reports whether the caller may see sess.
func (a Access) CanSee(sess Session) bool {
	switch a.Kind {
	case AccessAnonymous:
		return sess.CustomerID == ""
	case AccessCustomer:
		return sess.CustomerID == "" || sess.CustomerID == a.CustomerID
	}
	return true
}

// Edit is one atomic API change of a context.
type Edit struct {
	Access Access
	// Version, when set, must equal the stored metadata.version.
	Version *int64
	// ExpectCustomerID, when set, must equal the stored customerId ("" for
	// none): the caller checked its rights against that customer.
	ExpectCustomerID *string
	// Upsert creates the context when it does not exist: an anonymous one
	// with the tenant's lifetime, or a customer one when CustomerID is set.
	Upsert *Upsert
	// Set writes these values ("" clears a field).
	Set map[Field]string
	// ReplaceContext replaces all attributes with Context.
	ReplaceContext bool
	Context        map[string]json.RawMessage
	// SetAttributes adds or replaces attributes.
	SetAttributes map[string]json.RawMessage
	// DeleteAttribute removes an attribute; ErrNoAttribute if it is missing.
	DeleteAttribute string
}

// CustomerError reports an upsert of a session that a customer's login
// already claims: the caller must prove it acts for that customer.
type CustomerError struct{ Stored string }

func (e *CustomerError) Error() string { return "the session belongs to a customer" }

// Upsert asks Edit to create a missing context.
type Upsert struct{ CustomerID string }

// Edit applies an edit atomically, stamped with the server's time, and
// returns the new version. It is stamped with Redis's clock. Errors:
// ErrNotFound, ErrEnded (upsert of an ended session), *VersionConflictError
// (also when the customer is not the one expected), *CustomerError (upsert
// of a session a customer's login claims), ErrNoAttribute, ErrLimit.
func (s *Store) Edit(ctx context.Context, t Tenant, sessionID string, e Edit) (int64, error) {
	access := [...]string{AccessService: "any", AccessAnonymous: "anonymous", AccessCustomer: "customer"}[e.Access.Kind]
	version := ""
	if e.Version != nil {
		version = strconv.FormatInt(*e.Version, 10)
	}
	expect, expected := "0", ""
	if e.ExpectCustomerID != nil {
		expect, expected = "1", *e.ExpectCustomerID
	}
	args := append(s.tenantArgs(t), access, e.Access.CustomerID, version, s.opts.MaxAttributes, s.opts.MaxContextBytes, expect, expected)
	if u := e.Upsert; u != nil {
		args = append(args, "create", t.AnonymousLifetime.Milliseconds(), u.CustomerID)
		if u.CustomerID != "" {
			// A customer's context joins the customer's index as a login does,
			// so that the customer's logouts reach it.
			logouts, err := stringListAt(s.run(ctx, loginProgram, s.customerKeys(t.Name, u.CustomerID), "0", sessionID, ms(s.opts.Now())), 0)
			if err != nil {
				return 0, fmt.Errorf("record customer of session %s: %w", sessionID, err)
			}
			for _, lo := range logouts {
				args = append(args, "lo", u.CustomerID, lo)
			}
		}
	}
	for _, f := range []Field{FieldSiteCode, FieldCurrency, FieldCartID, FieldTargetLocation, FieldLanguage} {
		if v, ok := e.Set[f]; ok {
			args = append(args, "w", string(f), v)
		}
	}
	if e.ReplaceContext {
		args = append(args, "clearattrs")
		for k, v := range e.Context {
			args = append(args, "aset", k, string(v))
		}
	}
	for k, v := range e.SetAttributes {
		args = append(args, "aset", k, string(v))
	}
	if e.DeleteAttribute != "" {
		args = append(args, "adel", e.DeleteAttribute)
	}
	r, err := s.run(ctx, editProgram, []string{s.sessionKey(t.Name, sessionID)}, args...).Slice()
	if err != nil {
		return 0, fmt.Errorf("edit session %s: %w", sessionID, err)
	}
	switch r[0].(string) {
	case "ok":
		return r[1].(int64), nil
	case "notfound":
		return 0, fmt.Errorf("%w: %s", ErrNotFound, sessionID)
	case "ended":
		if e.Upsert != nil {
			return 0, fmt.Errorf("%w: %s", ErrEnded, sessionID)
		}
		return 0, fmt.Errorf("%w: %s", ErrNotFound, sessionID)
	case "conflict":
		return 0, &VersionConflictError{Current: r[1].(int64)}
	case "customer":
		return 0, &CustomerError{Stored: r[1].(string)}
	case "noattr":
		return 0, fmt.Errorf("%w: %s", ErrNoAttribute, e.DeleteAttribute)
	case "limit":
		what := r[1].(string)
		if what == "attributes" {
			return 0, fmt.Errorf("%w: a context holds at most %d attributes", ErrLimit, s.opts.MaxAttributes)
		}
		return 0, fmt.Errorf("%w: a context's attributes hold at most %d bytes", ErrLimit, s.opts.MaxContextBytes)
	}
	return 0, fmt.Errorf("edit session %s: unexpected script answer %v", sessionID, r)
}
