package contexts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionctx/sessionctx/events"
)

// Errors of the store. API code maps them to HTTP status in one place.
var (
	// ErrNotFound: no visible context (none yet, ended, expired, or one the
	// caller may not see).
	ErrNotFound = errors.New("session context not found")
	// ErrEnded: an upsert named a session that has ended; it is never
	// resurrected.
	ErrEnded = errors.New("session has ended")
	// ErrNoAttribute: the attribute to delete does not exist.
	ErrNoAttribute = errors.New("attribute not found")
	// ErrLimit: the edit would exceed the attribute count or context size.
	ErrLimit = errors.New("limit exceeded")
)

// VersionConflictError reports a stale metadata.version.
type VersionConflictError struct{ Current int64 }

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("version conflict: current version is %d", e.Current)
}

// Options configure a Store.
type Options struct {
	// Prefix is put in front of every key (tests use it to share a server).
	Prefix string
	// Retention is how long an ended or expired session's record is kept.
	Retention time.Duration
	// MaxAttributes and MaxContextBytes bound a context's attributes.
	MaxAttributes   int
	MaxContextBytes int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// DryRun makes Apply compute what each event would change against the
	// stored state, and write nothing.
	DryRun bool
}

// Store keeps session contexts in Redis. Every change of a session is one
// atomic step of a Lua program (programs.go) on the session's key.
type Store struct {
	rdb       redis.UniversalClient
	opts      Options
	loaded    atomic.Bool // the programs are loaded
	functions atomic.Bool // as functions, not scripts
	// sessionsPerCall bounds the sessions one call of the apply program
	// changes. A call costs Redis and the worker a fixed overhead beside its
	// sessions' work; Redis Cluster (and a Ring) needs the keys of one call
	// on one node, so there each session has a call of its own.
	sessionsPerCall int
}

// NewStore returns a store on rdb.
func NewStore(rdb redis.UniversalClient, opts Options) *Store {
	if opts.Retention <= 0 {
		opts.Retention = 24 * time.Hour
	}
	if opts.MaxAttributes <= 0 {
		opts.MaxAttributes = 100
	}
	if opts.MaxContextBytes <= 0 {
		opts.MaxContextBytes = 64 << 10
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	perCall := 1
	if _, single := rdb.(*redis.Client); single {
		perCall = 32
	}
	return &Store{rdb: rdb, opts: opts, sessionsPerCall: perCall}
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

func (s *Store) sessionKey(tenant, sessionID string) string {
	return s.opts.Prefix + "s:{" + tenant + ":" + sessionID + "}"
}

func (s *Store) customerKeys(tenant, customerID string) []string {
	tag := "{" + tenant + ":c:" + customerID + "}"
	return []string{s.opts.Prefix + "cs:" + tag, s.opts.Prefix + "cl:" + tag}
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// tenantArgs are the arguments of the session scripts that the tenant sets.
func (s *Store) tenantArgs(t Tenant) []any {
	return []any{
		s.opts.Retention.Milliseconds(), t.CustomerIdleLimit.Milliseconds(),
		t.Site.Code, t.Site.Currency, t.Site.Language, t.Site.HomeBase,
	}
}

func (s *Store) dry() string {
	if s.opts.DryRun {
		return "1"
	}
	return "0"
}

// Result tells what applying an event did.
type Result struct {
	// Changed is false when the event changed nothing (a duplicate).
	Changed bool
}

// Item is one validated event to apply, with its tenant's configuration.
type Item struct {
	Tenant Tenant
	Event  events.Event
}

// Apply applies one validated event of tenant t (see ApplyBatch).
func (s *Store) Apply(ctx context.Context, t Tenant, e events.Event) (Result, error) {
	res, errs := s.ApplyBatch(ctx, []Item{{Tenant: t, Event: e}})
	return res[0], errs[0]
}

// ApplyBatch applies validated events. Applying is idempotent and
// commutative: any delivery order, with duplicates, gives the same outcome,
// so the events of a batch may concern any sessions in any order. It takes
// at most three round trips: the customer steps of logins and of logouts
// naming no session, then the sessions' steps (up to sessionsPerCall in one
// call of the apply program), then the customers' index of ended sessions.
// Each event has its own result and error; an event that failed may have
// been applied in part and is safe to apply again.
//
// A logout naming no session is recorded with the customer before the
// customer's sessions are read; a login records its session with the
// customer before it reads the customer's logouts: whatever the
// interleaving of the two on several workers, one of them sees the other.
func (s *Store) ApplyBatch(ctx context.Context, items []Item) ([]Result, []error) {
	now := s.opts.Now()
	results := make([]Result, len(items))
	errs := make([]error, len(items))
	if err := s.loadPrograms(ctx); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return results, errs
	}

	// The customer steps: logins in calls of up to sessionsPerCall, a
	// logout naming no session in a call of its own.
	customer := make([]*customerStep, len(items))
	var logins []*programCall
	pipe := s.rdb.Pipeline()
	for i, it := range items {
		e, d := it.Event, it.Event.Data
		switch {
		case e.Type == events.CustomerLogin:
			if len(logins) == 0 || len(logins[len(logins)-1].keys) == 2*s.sessionsPerCall {
				logins = append(logins, &programCall{args: []any{s.dry()}})
			}
			c := logins[len(logins)-1]
			customer[i] = &customerStep{call: c, at: len(c.keys) / 2}
			c.keys = append(c.keys, s.customerKeys(e.Tenant, d.CustomerID)...)
			c.args = append(c.args, d.SessionID, ms(e.Time))
		case e.Type == events.CustomerLogout && d.SessionID == "":
			customer[i] = &customerStep{at: -1, call: &programCall{cmd: s.call(ctx, pipe, logoutAllProgram, s.customerKeys(e.Tenant, d.CustomerID),
				StampOf(e).String(), ms(e.Time), ms(now), s.opts.Retention.Milliseconds(), s.dry())}}
		}
	}
	for _, c := range logins {
		c.cmd = s.call(ctx, pipe, loginProgram, c.keys, c.args...)
	}
	s.exec(ctx, pipe)

	// The sessions' steps: the sessions of one tenant in calls of up to
	// sessionsPerCall.
	var calls []*programCall
	var sessions []appliedSession
	open := map[string]*programCall{} // per tenant, the call being filled
	add := func(item int, t Tenant, sid string, ops []any) {
		c := open[t.Name]
		if c == nil || len(c.keys) == s.sessionsPerCall {
			c = &programCall{args: append(append([]any{ms(now)}, s.tenantArgs(t)...), s.dry())}
			open[t.Name] = c
			calls = append(calls, c)
		}
		sessions = append(sessions, appliedSession{item: item, sid: sid, call: c, at: len(c.keys)})
		c.keys = append(c.keys, s.sessionKey(t.Name, sid))
		c.args = append(append(c.args, len(ops)), ops...)
	}
	for i, it := range items {
		e, d := it.Event, it.Event.Data
		var fromCustomer []string
		if c := customer[i]; c != nil {
			var err error
			if fromCustomer, err = c.answer(); err != nil {
				errs[i] = fmt.Errorf("record %s of customer %s: %w", e.Type, d.CustomerID, s.noScript(err))
				continue
			}
		}
		if e.Type == events.CustomerLogout && d.SessionID == "" {
			stamp := StampOf(e).String()
			for _, sid := range fromCustomer {
				add(i, it.Tenant, sid, []any{"lo", d.CustomerID, stamp})
			}
			continue
		}
		add(i, it.Tenant, d.SessionID, ops(it.Tenant, e, fromCustomer))
	}
	pipe = s.rdb.Pipeline()
	for _, c := range calls {
		c.cmd = s.call(ctx, pipe, applyProgram, c.keys, c.args...)
	}
	s.exec(ctx, pipe)

	// The customers' indexes learn when each session's record goes: a
	// logout that arrives before then may still move the session's end.
	marks := map[int][]any{}
	for _, c := range sessions {
		r, err := c.call.cmd.Slice()
		if err != nil {
			errs[c.item] = fmt.Errorf("apply %s to session %s: %w", items[c.item].Event.Type, c.sid, s.noScript(err))
			continue
		}
		r = r[4*c.at : 4*c.at+4]
		results[c.item].Changed = results[c.item].Changed || r[0].(int64) == 1
		// A login has just indexed its session as live (+inf): only an end
		// for good changes that. A logout, naming its session or not,
		// tells the customer's index when the session's record goes.
		e := items[c.item].Event
		expiry, final := r[2].(int64), r[3].(int64) == 1
		if (e.Type == events.CustomerLogin && final) || e.Type == events.CustomerLogout {
			mode, keep := ">", "inf"
			if expiry > 0 {
				keep = strconv.FormatInt(expiry, 10)
			}
			if final {
				mode = "="
			}
			marks[c.item] = append(marks[c.item], mode, keep, c.sid)
		}
	}
	if len(marks) > 0 && !s.opts.DryRun {
		pipe = s.rdb.Pipeline()
		cmds := map[int]*redis.Cmd{}
		for i, args := range marks {
			keys := s.customerKeys(items[i].Event.Tenant, items[i].Event.Data.CustomerID)
			cmds[i] = s.call(ctx, pipe, markProgram, keys[:1], append([]any{ms(now)}, args...)...)
		}
		s.exec(ctx, pipe)
		for i, cmd := range cmds {
			if err := cmd.Err(); err != nil && errs[i] == nil {
				errs[i] = fmt.Errorf("index sessions of customer %s: %w", items[i].Event.Data.CustomerID, s.noScript(err))
			}
		}
	}
	return results, errs
}

// programCall is one call of a program that takes the keys and arguments
// of several sessions or customers.
type programCall struct {
	keys []string
	args []any
	cmd  *redis.Cmd
}

// appliedSession is a session that an item of a batch changes: the at-th of
// its call.
type appliedSession struct {
	item int
	sid  string
	call *programCall
	at   int
}

// customerStep is the customer step of an item: the at-th answer of its
// call, or (at < 0) the call's only answer.
type customerStep struct {
	call *programCall
	at   int
}

// answer returns the step's list of logouts or sessions.
func (c *customerStep) answer() ([]string, error) {
	if c.at < 0 {
		return c.call.cmd.StringSlice()
	}
	return stringListAt(c.call.cmd, c.at)
}

// stringListAt returns the at-th list of strings of a list of lists.
func stringListAt(cmd *redis.Cmd, at int) ([]string, error) {
	all, err := cmd.Slice()
	if err != nil {
		return nil, err
	}
	list, _ := all[at].([]any)
	out := make([]string, len(list))
	for i, v := range list {
		out[i], _ = v.(string)
	}
	return out, nil
}

// ops returns the apply program's operations for an event; logouts are the
// customer's logouts that a login found.
func ops(t Tenant, e events.Event, logouts []string) []any {
	stamp := StampOf(e).String()
	ops := make([]any, 0, 16)
	for _, w := range writes(t, e) {
		ops = append(ops, "w", string(w.Field), stamp, w.Value)
	}
	switch e.Type {
	case events.AnonymousLogin, events.AnonymousRefreshed:
		ops = append(ops, "ax", ms(anonymousExpiry(t, e)))
	case events.AnonymousExpired:
		ops = append(ops, "xe", stamp)
	case events.CartCreated:
		ops = append(ops, "ca", ms(e.Time), "cx", ms(e.Time.Add(t.AnonymousLifetime)))
	case events.CustomerLogin:
		ops = append(ops, "li", e.Data.CustomerID, stamp)
		for _, lo := range logouts {
			ops = append(ops, "lo", e.Data.CustomerID, lo)
		}
	case events.CustomerLogout:
		ops = append(ops, "lx", stamp)
	}
	return ops
}

// exec runs a pipeline; the errors are read from its commands.
func (s *Store) exec(ctx context.Context, pipe redis.Pipeliner) {
	if pipe.Len() > 0 {
		_, _ = pipe.Exec(ctx)
	}
}

// noScript notes that Redis lost the programs, so that the next batch loads
// them again; the failed events are retried.
func (s *Store) noScript(err error) error {
	s.lost(err)
	return err
}

// record is a session's hash, decoded.
type record map[string]string

func (r record) int(k string) int64 {
	n, _ := strconv.ParseInt(r[k], 10, 64)
	return n
}

func (r record) time(k string) time.Time {
	if r[k] == "" {
		return time.Time{}
	}
	return time.UnixMilli(r.int(k)).UTC()
}

func (r record) value(f Field, t Tenant) string {
	v, ok := r[string(f)]
	if !ok {
		return t.baseline(f)
	}
	_, val, _ := strings.Cut(v, " ")
	return val
}

func (r record) outcome(t Tenant) Outcome {
	o := Outcome{
		Ended: r["e"] != "", EndedAt: r.time("e"), HasCart: r["ca"] != "", Until: r.time("dl"),
		CustomerID: r.value(FieldCustomerID, t), SiteCode: r.value(FieldSiteCode, t), Currency: r.value(FieldCurrency, t),
		CartID: r.value(FieldCartID, t), TargetLocation: r.value(FieldTargetLocation, t), Language: r.value(FieldLanguage, t),
		CreatedAt: r.time("ca"),
	}
	for k := range r {
		if strings.HasPrefix(k, "li:") {
			o.Customer = true
			break
		}
	}
	return o.Comparable()
}

func (s *Store) load(ctx context.Context, tenant, sessionID string) (record, error) {
	r, err := s.rdb.HGetAll(ctx, s.sessionKey(tenant, sessionID)).Result()
	if err != nil {
		return nil, fmt.Errorf("read session %s: %w", sessionID, err)
	}
	return r, nil
}

// Inspect returns the lifecycle outcome of a session, visible or not.
func (s *Store) Inspect(ctx context.Context, t Tenant, sessionID string) (Outcome, error) {
	r, err := s.load(ctx, t.Name, sessionID)
	if err != nil {
		return Outcome{}, err
	}
	return r.outcome(t), nil
}

// Get returns the visible context of a session, or ErrNotFound.
func (s *Store) Get(ctx context.Context, t Tenant, sessionID string) (Session, error) {
	r, err := s.load(ctx, t.Name, sessionID)
	if err != nil {
		return Session{}, err
	}
	o := r.outcome(t)
	if !o.Visible(s.opts.Now()) {
		return Session{}, fmt.Errorf("%w: %s", ErrNotFound, sessionID)
	}
	sess := Session{
		SessionID: sessionID, CustomerID: o.CustomerID, SiteCode: o.SiteCode, Currency: o.Currency,
		CartID: o.CartID, TargetLocation: o.TargetLocation, Language: o.Language,
		Metadata: Metadata{Version: r.int("v"), CreatedAt: o.CreatedAt, ModifiedAt: r.time("m")},
	}
	for k, v := range r {
		if name, ok := strings.CutPrefix(k, "a:"); ok {
			if sess.Context == nil {
				sess.Context = map[string]json.RawMessage{}
			}
			sess.Context[name] = json.RawMessage(v)
		}
	}
	return sess, nil
}
