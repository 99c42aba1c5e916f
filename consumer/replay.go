package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
)

// A replay's defaults: 16 parts of 256 events in flight keep Redis busier
// than the worker's 8 of 128 (a rebuild went 1.02x the live rate with 8 of
// 128, 1.06-1.10x with these).
const (
	ReplayBatchSize   = 4096 // events read per batch
	ReplayConcurrency = 16   // parts of a batch applied at once
)

// ReplayConfig configures a replay of the event stream.
type ReplayConfig struct {
	// Config gives the stream, store and tenants; the store may be another
	// Redis (rebuild), the live one (repair) or a dry-run store.
	Config
	// Tenant, when set, replays only that tenant's events.
	Tenant string
	// FromSeq or FromTime start the replay; both zero: the stream's first
	// message, as far back as any live session can reach.
	FromSeq  uint64
	FromTime time.Time
	// Progress, when set, is called after every batch.
	Progress func(ReplayProgress)
}

// ReplayProgress is the state of a running replay.
type ReplayProgress struct {
	// Done and Total count messages; Total is what the stream held for the
	// replay when it started.
	Done, Total uint64
	// NextSeq is the stream sequence to resume from: every message before it
	// has been applied.
	NextSeq uint64
	Elapsed time.Duration
}

// ReplaySummary is what a replay did.
type ReplaySummary struct {
	ReplayProgress
	// Read counts messages; Applied those that changed state; Unchanged the
	// duplicates and stale events; Invalid those that can never be applied
	// (already dead-lettered when they were first consumed).
	Read, Applied, Unchanged, Invalid int64
	// Sessions is how many distinct sessions applied events changed.
	Sessions int
	// Interrupted is set when ctx ended the replay early.
	Interrupted bool
}

// Replay applies the stream's events again through the worker's code path,
// up to the last message the stream held when the replay started. It reads
// with an ordered consumer (nothing is acknowledged or dead-lettered) and
// retries passing failures with backoff until ctx ends. When ctx ends it
// stops after the batch in hand and returns the summary with Interrupted set
// and NextSeq to resume from.
func Replay(ctx context.Context, cfg ReplayConfig) (ReplaySummary, error) {
	cfg.Config = cfg.Config.withDefaults(ReplayConcurrency, ReplayBatchSize)
	start := time.Now()
	stream, err := cfg.JS.Stream(ctx, cfg.Streams.Stream)
	if err != nil {
		return ReplaySummary{}, fmt.Errorf("stream %s: %w", cfg.Streams.Stream, err)
	}
	last := stream.CachedInfo().State.LastSeq
	occ := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case cfg.FromSeq > 0:
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cfg.FromSeq
	case !cfg.FromTime.IsZero():
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &cfg.FromTime
	}
	// A tenant is filtered here, not by the server: before NATS 2.10 a
	// consumer takes one filter subject, and "*.*.<tenant>" spans the
	// stream's six subjects.
	if cfg.Tenant != "" && !events.ValidTenant(cfg.Tenant) {
		return ReplaySummary{}, fmt.Errorf("tenant %q is not a valid tenant name", cfg.Tenant)
	}
	wanted := func(subject string) bool { return cfg.Tenant == "" || strings.HasSuffix(subject, "."+cfg.Tenant) }
	sum := ReplaySummary{}
	sum.NextSeq = max(cfg.FromSeq, 1)
	if last == 0 || last < cfg.FromSeq {
		return sum, nil
	}
	cons, err := cfg.JS.OrderedConsumer(ctx, cfg.Streams.Stream, occ)
	if err != nil {
		return sum, fmt.Errorf("read stream %s: %w", cfg.Streams.Stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * cfg.BatchSize))
	if err != nil {
		return sum, fmt.Errorf("read stream %s: %w", cfg.Streams.Stream, err)
	}

	// The batch in hand is finished even when ctx ends, unless it cannot be.
	work := context.WithoutCancel(ctx)
	sessions := map[string]struct{}{}
	var mu sync.Mutex // guards sum's counts and sessions while chunks are applied
	// applyChunk applies items, retrying failed ones with backoff until ctx ends.
	applyChunk := func(items []contexts.Item) error {
		for attempt := uint64(1); len(items) > 0; attempt++ {
			results, errs := cfg.Store.ApplyBatch(work, items)
			var failed []contexts.Item
			var firstErr error
			mu.Lock()
			for i, it := range items {
				switch {
				case errs[i] != nil:
					failed = append(failed, it)
					firstErr = cmp.Or(firstErr, errs[i])
				case results[i].Changed:
					sum.Applied++
					if sid := it.Event.Data.SessionID; sid != "" {
						sessions[it.Event.Tenant+"/"+sid] = struct{}{}
					}
				default:
					sum.Unchanged++
				}
			}
			mu.Unlock()
			if items = failed; len(items) > 0 {
				cfg.Logger.Warn("replay: events failed, retrying", "events", len(items), "err", firstErr)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(Backoff(attempt)):
				}
			}
		}
		return nil
	}
	// apply applies a batch as Concurrency chunks at once, as the worker
	// does: Redis works on one chunk while this process prepares another.
	apply := func(items []contexts.Item) error {
		var wg sync.WaitGroup
		errs := make(chan error, cfg.Concurrency)
		for chunk := range slices.Chunk(items, max(1, (len(items)+cfg.Concurrency-1)/cfg.Concurrency)) {
			wg.Go(func() { errs <- applyChunk(chunk) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	}

	// A reader decodes the next batch while the current one is applied.
	type readBatch struct {
		items            []contexts.Item
		read, invalid    int64
		scanned, nextSeq uint64
		total            uint64 // what the replay will scan, known from its first message
		last             bool
		err              error
	}
	batches := make(chan readBatch, 1)
	stop := make(chan struct{})
	defer func() {
		close(stop)
		it.Stop()
		for range batches { // let the reader end
		}
	}()
	go func() {
		defer close(batches)
		nextSeq, total := sum.NextSeq, uint64(0)
		for done := false; !done; {
			b := readBatch{nextSeq: nextSeq}
			for b.read < int64(cfg.BatchSize) {
				m, err := it.Next(jetstream.NextMaxWait(5 * time.Second))
				switch {
				case err == nil:
				case errors.Is(err, jetstream.ErrMsgIteratorClosed):
					done = true // ctx ended
				case errors.Is(err, nats.ErrTimeout) && total == 0:
					done = true // nothing to read from the start
				case errors.Is(err, nats.ErrTimeout):
					// Messages were delivered and the end is not reached: a
					// stall (a reconnect, a leader change) must not pass for
					// the end of the stream.
					b.err, done = fmt.Errorf("read stream %s: nothing delivered for 5s before sequence %d of %d; --resume continues", cfg.Streams.Stream, b.nextSeq, last), true
				default:
					b.err, done = fmt.Errorf("read stream %s: %w", cfg.Streams.Stream, err), true
				}
				if done {
					break
				}
				md, err := m.Metadata()
				if err != nil {
					b.err, done = fmt.Errorf("message metadata: %w", err), true
					break
				}
				if md.Sequence.Stream > last {
					done = true
					break
				}
				if total == 0 {
					total = min(md.NumPending+1, last-md.Sequence.Stream+1)
				}
				b.scanned++
				b.nextSeq = md.Sequence.Stream + 1
				if wanted(m.Subject()) {
					b.read++
					if ev, tenant, err := Decode(cfg.Streams, cfg.Tenants, m.Subject(), m.Data(), md.Timestamp); err != nil {
						b.invalid++
					} else {
						b.items = append(b.items, contexts.Item{Tenant: tenant, Event: ev})
					}
				}
				if md.Sequence.Stream == last || md.NumPending == 0 {
					done = true
					break
				}
			}
			b.last, b.total, nextSeq = done, total, b.nextSeq
			select {
			case batches <- b:
			case <-stop:
				return
			}
		}
	}()

	for b := range batches {
		if b.err != nil {
			return sum, b.err
		}
		if err := apply(b.items); err != nil {
			sum.Interrupted = true
			break // ctx ended while retrying; this batch is not complete
		}
		sum.Total = max(sum.Total, b.total)
		sum.Read += b.read
		sum.Invalid += b.invalid
		sum.Done += b.scanned
		sum.NextSeq = b.nextSeq
		sum.Elapsed = time.Since(start)
		if cfg.Progress != nil {
			cfg.Progress(sum.ReplayProgress)
		}
		if ctx.Err() != nil && !b.last {
			sum.Interrupted = true
			break
		}
	}
	sum.Sessions = len(sessions)
	sum.Elapsed = time.Since(start)
	return sum, nil
}
