package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionctx/sessionctx/consumer"
	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/histories"
)

// eventSource makes realistic event histories (internal/histories) chunk by
// chunk, each chunk of new sessions, with ids made unique across chunks.
type eventSource struct {
	r     *rand.Rand
	chunk int
	start time.Time
	span  time.Duration
}

func newEventSource(seed uint64, start time.Time, span time.Duration) *eventSource {
	return &eventSource{r: rand.New(rand.NewPCG(seed, 0x5e55)), start: start, span: span}
}

// next returns the events of sessions new sessions in event-time order.
func (s *eventSource) next(sessions int) []events.Event {
	s.chunk++
	evs := histories.Generate(s.r, histories.Config{
		Tenant: tenant, Sessions: sessions, Customers: max(1, sessions/4), Start: s.start, Span: s.span,
	})
	pre := fmt.Sprintf("c%d-", s.chunk)
	for i := range evs {
		// Publishers make UUIDs (events.New); ids are stored in stamps.
		evs[i].ID = s.uuid()
		if evs[i].Data.SessionID != "" {
			evs[i].Data.SessionID = pre + evs[i].Data.SessionID
		}
		if evs[i].Data.CustomerID != "" {
			evs[i].Data.CustomerID = pre + evs[i].Data.CustomerID
		}
	}
	slices.SortStableFunc(evs, func(a, b events.Event) int { return a.Time.Compare(b.Time) })
	return evs
}

// uuid returns a random (version 4 form) UUID from the source's generator,
// so that runs are reproducible.
func (s *eventSource) uuid() string {
	a, b := s.r.Uint64(), s.r.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xfff, 0x8000|(b>>48)&0x3fff, b&0xffffffffffff)
}

// take returns exactly n events of new sessions, in event-time order.
func (s *eventSource) take(n int) []events.Event {
	var out []events.Event
	for len(out) < n {
		out = append(out, s.next(10_000)...)
	}
	out = out[:n]
	slices.SortStableFunc(out, func(a, b events.Event) int { return a.Time.Compare(b.Time) })
	return out
}

// encoded is an event as published: subject (without prefix), id, body.
type encoded struct {
	subject, id string
	body        []byte
}

func encodeAll(evs []events.Event) ([]encoded, error) {
	out := make([]encoded, len(evs))
	for i, e := range evs {
		body, err := events.Encode(e)
		if err != nil {
			return nil, err
		}
		out[i] = encoded{e.Subject(), e.ID, body}
	}
	return out, nil
}

// publish publishes the events with prefix as events.Publisher does (the
// event id as Nats-Msg-Id), asynchronously, and waits for every ack.
func (b *bench) publish(ctx context.Context, prefix string, evs []encoded) error {
	var failed int
	var firstErr error
	futures := make([]jetstream.PubAckFuture, 0, 4096)
	settle := func() error {
		select {
		case <-b.js.PublishAsyncComplete():
		case <-time.After(60 * time.Second):
			return errors.New("publish: acks still pending after 60s")
		case <-ctx.Done():
			return ctx.Err()
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				failed++
				if firstErr == nil {
					firstErr = err
				}
			}
		}
		futures = futures[:0]
		return nil
	}
	for _, e := range evs {
		msg := &nats.Msg{Subject: prefix + e.subject, Data: e.body, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, e.id)
		f, err := b.js.PublishMsgAsync(msg, jetstream.WithStallWait(30*time.Second))
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		futures = append(futures, f)
		if len(futures) == cap(futures) {
			if err := settle(); err != nil {
				return err
			}
		}
	}
	if err := settle(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("publish: %d of %d events failed, first: %w", failed, len(evs), firstErr)
	}
	return nil
}

// lastSeq is the stream's last sequence number.
func (b *bench) lastSeq(ctx context.Context, stream string) (uint64, uint64, error) {
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return 0, 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	return info.State.LastSeq, info.State.Msgs, nil
}

// waitAcked polls the consumer until every message up to seq is acked (no
// message pending, none awaiting an ack). It returns when that was seen.
func waitAcked(ctx context.Context, cons jetstream.Consumer, seq uint64, timeout time.Duration, what string) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	lastLog := time.Now()
	for {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := cons.Info(ictx)
		cancel()
		now := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return now, ctx.Err()
			}
			return now, fmt.Errorf("%s: consumer info: %w", what, err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= seq {
			return now, nil
		}
		if now.After(deadline) {
			return now, fmt.Errorf("%s: not done after %s: ack floor %d of %d, %d pending, %d awaiting ack",
				what, timeout, info.AckFloor.Stream, seq, info.NumPending, info.NumAckPending)
		}
		if now.Sub(lastLog) > 5*time.Second {
			lastLog = now
			logf("%s: %d of %d acked", what, info.AckFloor.Stream, seq)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ingestResult is kept for the replay figure.
type ingestResult struct {
	streams consumer.Streams
	prefix  string // the worker's key prefix
	events  int
	rate    float64
}

// pullBatch is what the worker asks the server for at once, with the
// concurrency the bench gives it.
func (b *bench) pullBatch() int {
	return consumer.New(consumer.Config{Concurrency: b.opts.concurrency}).PullWindow()
}

func (b *bench) waitTimeout(n int) time.Duration {
	if b.opts.quick {
		return 40 * time.Second
	}
	return max(2*time.Minute, time.Duration(n)*time.Millisecond) // at least 1000 events/s
}

// ingest: the worker applying N events against a bare consumer acking the
// same N messages from a copy of the stream, and against the worker with
// rawStore, which only reads and writes each event's session.
func (b *bench) ingest(ctx context.Context) error {
	n := b.opts.events
	now := time.Now()
	evs, err := encodeAll(newEventSource(1, now.Add(-time.Hour), time.Hour).take(n))
	if err != nil {
		return err
	}
	size := 0
	for _, e := range evs {
		size += len(e.body)
	}
	live := consumer.Streams{Stream: b.streamName("ingest"), SubjectPrefix: b.subjectPrefix("in")}.Defaults()
	raw := consumer.Streams{Stream: b.streamName("raw"), SubjectPrefix: b.subjectPrefix("raw")}.Defaults()
	rawStore := consumer.Streams{Stream: b.streamName("rawstore"), SubjectPrefix: b.subjectPrefix("rs")}.Defaults()
	all := []consumer.Streams{raw, rawStore, live}
	cons := make([]jetstream.Consumer, len(all))
	seqs := make([]uint64, len(all))
	t := time.Now()
	for i, s := range all {
		b.own(s.Stream, s.DeadLetterStream())
		if cons[i], err = consumer.Provision(ctx, b.js, s); err != nil {
			return err
		}
		if err := b.publish(ctx, s.SubjectPrefix, evs); err != nil {
			return err
		}
		var msgs uint64
		if seqs[i], msgs, err = b.lastSeq(ctx, s.Stream); err != nil {
			return err
		}
		if msgs != uint64(n) {
			return fmt.Errorf("stream %s holds %d messages, want %d", s.Stream, msgs, n)
		}
	}
	logf("published %d events (%d bytes on average) to each of %d streams in %s", n, size/n, len(all), time.Since(t).Round(time.Millisecond))

	// Raw limit: pull with the worker's batch size, ack, nothing else.
	it, err := cons[0].Messages(jetstream.PullMaxMessages(b.pullBatch()))
	if err != nil {
		return err
	}
	b.waitQuiet(ctx, "the raw consumer")
	win := b.cpuStart(ctx)
	t0 := time.Now()
	go func() {
		for {
			msg, err := it.Next()
			if err != nil {
				return
			}
			_ = msg.Ack()
		}
	}()
	t1, err := waitAcked(ctx, cons[0], seqs[0], b.waitTimeout(n), "raw consumer")
	it.Stop()
	if err != nil {
		return err
	}
	rawRate := float64(n) / t1.Sub(t0).Seconds()
	logf("raw consumer: %d messages acked in %s: %.0f/s; %s", n, t1.Sub(t0).Round(time.Millisecond), rawRate, win.end(ctx))

	rawStoreRate, err := b.timeWorker(ctx, "worker with the raw store", rawStore, cons[1], seqs[1], n, b.keyPrefix("rawstore"), true)
	if err != nil {
		return err
	}
	rate, err := b.timeWorker(ctx, "worker", live, cons[2], seqs[2], n, b.keyPrefix("ingest"), false)
	if err != nil {
		return err
	}
	b.ingested = &ingestResult{streams: live, prefix: b.keyPrefix("ingest"), events: n, rate: rate}

	target, pass := check(">=0.5", rate >= 0.5*rawRate)
	b.report.add(figure{Name: "ingest", Value: rate, Unit: "events/s", Baseline: rawRate,
		baselineText: "ack-only consumer", target: target, pass: pass})
	b.report.add(figure{Name: "ingest_vs_raw_store", Value: rate, Unit: "events/s", Baseline: rawStoreRate,
		baselineText: "worker, HGETALL+HSET+PEXPIREAT store"})
	return nil
}

// timeWorker runs a worker child on the stream s until its n messages, up
// to seq, are acknowledged and returns its rate; with raw it applies events
// with rawStore.
func (b *bench) timeWorker(ctx context.Context, what string, s consumer.Streams, cons jetstream.Consumer, seq uint64, n int, prefix string, raw bool) (float64, error) {
	b.waitQuiet(ctx, "the "+what)
	w, err := b.startChild(ctx, "worker", serverConfig{
		RedisURL: b.redisURL, NATSURL: b.natsURL, KeyPrefix: prefix,
		Stream: s.Stream, SubjectPrefix: s.SubjectPrefix, Concurrency: b.opts.concurrency, RawStore: raw,
	})
	if err != nil {
		return 0, err
	}
	defer w.stop()
	profile := "worker-ingest"
	if raw {
		profile = "worker-ingest-raw-store"
	}
	stopProfile := b.profile(w, profile)
	win := b.cpuStart(ctx, w)
	t0 := time.Now()
	t1, err := waitAcked(ctx, cons, seq, b.waitTimeout(n), what)
	stopProfile()
	if err != nil {
		return 0, err
	}
	rate := float64(n) / t1.Sub(t0).Seconds()
	logf("%s: %d events applied and acked in %s: %.0f/s; %s", what, n, t1.Sub(t0).Round(time.Millisecond), rate, win.end(ctx))
	if _, dead, err := b.lastSeq(ctx, s.DeadLetterStream()); err == nil && dead > 0 {
		logf("WARNING: %d events were dead-lettered", dead)
	}
	if st, err := w.stats(false); err == nil {
		logf("%s after ingest: RSS %.1f MB, heap %.1f MB, %d goroutines", what, mb(st.RSS), mb(int64(st.HeapLive)), st.Goroutines)
	}
	return rate, nil
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }
