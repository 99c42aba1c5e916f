package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
)

// Applier applies validated events to the store, each with its own result
// and error; *contexts.Store has it.
type Applier interface {
	ApplyBatch(ctx context.Context, items []contexts.Item) ([]contexts.Result, []error)
}

// TenantLookup finds a tenant's configuration; it fails with
// contexts.ErrUnknownTenant for a tenant that is not served.
type TenantLookup interface {
	Lookup(name string) (contexts.Tenant, error)
}

// Headers of a dead letter.
const (
	HeaderReason   = "Sessionctx-Reason"
	HeaderSubject  = "Sessionctx-Subject"
	HeaderSequence = "Sessionctx-Stream-Sequence"
	HeaderReceived = "Sessionctx-Received"
)

// Config configures a Worker.
type Config struct {
	JS      jetstream.JetStream
	Streams Streams
	Store   Applier
	Tenants TenantLookup
	Logger  *slog.Logger
	// Concurrency is how many batches are applied at once (default 8), and
	// BatchSize how many messages a batch holds at most (default 128): a
	// batch is applied in a few pipelined round trips. Order does not
	// matter: the store's result is the same in any order.
	Concurrency int
	BatchSize   int
	// ShutdownTimeout bounds how long in-flight work may take after the
	// context is cancelled (default 10s).
	ShutdownTimeout time.Duration
	// Metrics counts outcomes; nil counts nothing.
	Metrics *Metrics
}

// Worker consumes the event stream and applies every event to the store.
type Worker struct {
	cfg Config
}

// New returns a worker.
func New(cfg Config) *Worker {
	return &Worker{cfg: cfg.withDefaults(8, 128)}
}

// withDefaults fills in what cfg leaves unset; concurrency and batch differ
// between the worker and a replay.
func (cfg Config) withDefaults(concurrency, batch int) Config {
	cfg.Streams = cfg.Streams.Defaults()
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = concurrency
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = batch
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// PullWindow is how many messages the worker asks the server for at once:
// enough for every batch in flight and as many waiting.
func (w *Worker) PullWindow() int { return 2 * w.cfg.Concurrency * w.cfg.BatchSize }

// Run provisions the streams and consumer and applies events until ctx is
// cancelled. Then it stops pulling, finishes the messages it holds and
// returns nil.
func (w *Worker) Run(ctx context.Context) error {
	cons, err := Provision(ctx, w.cfg.JS, w.cfg.Streams)
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(w.PullWindow()))
	if err != nil {
		return fmt.Errorf("consume %s: %w", w.cfg.Streams.Stream, err)
	}
	w.cfg.Logger.Info("worker consuming", "stream", w.cfg.Streams.Stream, "consumer", w.cfg.Streams.Durable,
		"concurrency", w.cfg.Concurrency, "batch", w.cfg.BatchSize)
	if w.PullWindow() > w.cfg.Streams.MaxAckPending {
		w.cfg.Logger.Warn("the consumer's max ack pending is below this worker's pull window: the server will hold back deliveries",
			"max_ack_pending", w.cfg.Streams.MaxAckPending, "pull_window", w.PullWindow())
	}

	// In-flight work finishes with a context of its own, so that shutdown
	// does not abort half-applied messages.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-work.Done():
			return
		}
		it.Drain()
		select {
		case <-time.After(w.cfg.ShutdownTimeout):
			cancelWork()
		case <-work.Done():
		}
	}()

	msgs := make(chan jetstream.Msg, w.cfg.BatchSize)
	var wg sync.WaitGroup
	for range w.cfg.Concurrency {
		wg.Go(func() {
			for batch := nextBatch(msgs, w.cfg.BatchSize); len(batch) > 0; batch = nextBatch(msgs, w.cfg.BatchSize) {
				w.HandleBatch(work, batch)
			}
		})
	}
	var runErr error
	for {
		msg, err := it.Next()
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				runErr = fmt.Errorf("consume %s: %w", w.cfg.Streams.Stream, err)
				it.Stop()
			}
			break
		}
		msgs <- msg
	}
	close(msgs)
	wg.Wait()
	cancelWork()
	<-stopped
	if runErr != nil {
		return runErr
	}
	w.cfg.Logger.Info("worker stopped", "stream", w.cfg.Streams.Stream)
	return nil
}

// Outcome is what handling one message did.
type Outcome string

// The outcomes of handling a message.
const (
	Applied      Outcome = "applied"
	Duplicate    Outcome = "duplicate"
	DeadLettered Outcome = "dead_lettered"
	Retried      Outcome = "retried"
)

// nextBatch waits for a message, then takes those already waiting, up to
// size; it returns nil once msgs is closed and empty.
func nextBatch(msgs <-chan jetstream.Msg, size int) []jetstream.Msg {
	m, ok := <-msgs
	if !ok {
		return nil
	}
	batch := []jetstream.Msg{m}
	for len(batch) < size {
		select {
		case m, ok := <-msgs:
			if !ok {
				return batch
			}
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// HandleBatch applies messages and acknowledges each once Redis has its
// result. A message that can never be applied goes to the dead-letter
// stream with the reason and is acknowledged; one that fails for a passing
// reason is negatively acknowledged with a backoff, to be redelivered.
func (w *Worker) HandleBatch(ctx context.Context, msgs []jetstream.Msg) []Outcome {
	outcomes := make([]Outcome, len(msgs))
	items := make([]contexts.Item, 0, len(msgs))
	pos := make([]int, 0, len(msgs)) // item i is message pos[i]
	for i, msg := range msgs {
		var received time.Time
		var seq uint64
		if md, err := msg.Metadata(); err == nil {
			received, seq = md.Timestamp, md.Sequence.Stream
		}
		ev, tenant, err := Decode(w.cfg.Streams, w.cfg.Tenants, msg.Subject(), msg.Data(), received)
		if err != nil {
			if derr := w.deadLetter(ctx, msg, seq, received, err); derr != nil {
				w.retry(msg, derr)
				outcomes[i] = Retried
			} else {
				outcomes[i] = DeadLettered
			}
			continue
		}
		items = append(items, contexts.Item{Tenant: tenant, Event: ev})
		pos = append(pos, i)
	}
	if len(items) > 0 {
		results, errs := w.cfg.Store.ApplyBatch(ctx, items)
		for j, i := range pos {
			switch {
			case errs[j] != nil:
				w.retry(msgs[i], errs[j])
				outcomes[i] = Retried
			case results[j].Changed:
				outcomes[i] = Applied
			default:
				outcomes[i] = Duplicate
			}
		}
	}
	for i, msg := range msgs {
		if outcomes[i] == Retried {
			continue
		}
		if err := msg.Ack(); err != nil {
			// Applying is idempotent: the redelivery will change nothing.
			w.cfg.Logger.Warn("ack failed", "subject", msg.Subject(), "err", err)
		}
	}
	for _, o := range outcomes {
		w.cfg.Metrics.count(o)
	}
	return outcomes
}

// retry asks for a redelivery of msg after a backoff that grows with its
// deliveries.
func (w *Worker) retry(msg jetstream.Msg, cause error) {
	delay := Backoff(deliveries(msg))
	w.cfg.Logger.Warn("event failed, will retry", "subject", msg.Subject(), "retry_in", delay, "err", cause)
	if err := msg.NakWithDelay(delay); err != nil {
		w.cfg.Logger.Warn("nak failed", "subject", msg.Subject(), "err", err)
	}
}

// Decode validates a message of the event stream as the worker does: the
// subject prefix, the envelope and payload, and the tenant. Every error
// means the message can never be applied.
func Decode(s Streams, tenants TenantLookup, subject string, body []byte, received time.Time) (events.Event, contexts.Tenant, error) {
	bare, ok := strings.CutPrefix(subject, s.SubjectPrefix)
	if !ok {
		return events.Event{}, contexts.Tenant{}, fmt.Errorf("%w: subject %q lacks prefix %q", events.ErrInvalid, subject, s.SubjectPrefix)
	}
	ev, err := events.Decode(body, bare, received)
	if err != nil {
		return events.Event{}, contexts.Tenant{}, err
	}
	tenant, err := tenants.Lookup(ev.Tenant)
	if err != nil {
		return events.Event{}, contexts.Tenant{}, err
	}
	return ev, tenant, nil
}

// deadLetter publishes the original bytes with the reason. The message id
// is derived from the stream sequence, so a redelivered poison message is
// dead-lettered once.
func (w *Worker) deadLetter(ctx context.Context, msg jetstream.Msg, seq uint64, received time.Time, reason error) error {
	dl := &nats.Msg{Subject: w.cfg.Streams.DeadLetterSubject(), Data: msg.Data(), Header: nats.Header{}}
	dl.Header.Set(HeaderReason, reason.Error())
	dl.Header.Set(HeaderSubject, msg.Subject())
	dl.Header.Set(HeaderSequence, strconv.FormatUint(seq, 10))
	if !received.IsZero() {
		dl.Header.Set(HeaderReceived, received.UTC().Format(time.RFC3339Nano))
	}
	dl.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s-%d", w.cfg.Streams.Stream, seq))
	if _, err := w.cfg.JS.PublishMsg(ctx, dl); err != nil {
		return fmt.Errorf("dead-letter message %d: %w", seq, err)
	}
	w.cfg.Logger.Warn("event dead-lettered", "subject", msg.Subject(), "seq", seq, "reason", reason.Error())
	return nil
}

func deliveries(msg jetstream.Msg) uint64 {
	if md, err := msg.Metadata(); err == nil {
		return md.NumDelivered
	}
	return 1
}

// Backoff is the delay before redelivery attempt n+1: exponential from
// 100ms, capped at 30s, with jitter.
func Backoff(n uint64) time.Duration {
	d := 100 * time.Millisecond
	for i := uint64(1); i < n && d < 30*time.Second; i++ {
		d *= 2
	}
	d = min(d, 30*time.Second)
	return d/2 + rand.N(d/2+1)
}
