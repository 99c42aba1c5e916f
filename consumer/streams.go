// Package consumer is the worker that applies lifecycle events from NATS
// JetStream to the session-context store.
package consumer

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionctx/sessionctx/events"
)

// Streams names the event stream, its dead-letter stream and the worker's
// durable consumer.
type Streams struct {
	// Stream is the event stream's name (SESSION_EVENTS in production).
	Stream string
	// SubjectPrefix is put in front of every subject; empty in production.
	SubjectPrefix string
	// Durable is the worker's durable consumer name.
	Durable string
	// MaxAge is how long the stream keeps events (replay horizon).
	MaxAge time.Duration
	// Replicas of the streams and consumer (3 in a clustered deployment).
	Replicas int
	// MaxAckPending bounds the messages delivered to all of the consumer's
	// workers together and not yet acknowledged: it must hold every
	// worker's pull window (Worker.PullWindow), or the server holds back
	// deliveries.
	MaxAckPending int
}

// DefaultMaxAckPending holds the pull windows of 32 workers at their default
// concurrency and batch size.
const DefaultMaxAckPending = 65536

// Defaults fills unset fields with the production defaults.
func (s Streams) Defaults() Streams {
	if s.Stream == "" {
		s.Stream = "SESSION_EVENTS"
	}
	if s.Durable == "" {
		s.Durable = "sessionctx-worker"
	}
	if s.MaxAge <= 0 {
		s.MaxAge = 7 * 24 * time.Hour
	}
	if s.Replicas <= 0 {
		s.Replicas = 1
	}
	if s.MaxAckPending <= 0 {
		s.MaxAckPending = DefaultMaxAckPending
	}
	return s
}

// DeadLetterStream is the name of the dead-letter stream.
func (s Streams) DeadLetterStream() string { return s.Stream + "_DLQ" }

// DeadLetterSubject is the subject dead letters are published on.
func (s Streams) DeadLetterSubject() string { return s.SubjectPrefix + "sessionctx.dlq." + s.Stream }

// Subjects are the event stream's subjects: "<type>.<tenant>" for each type.
func (s Streams) Subjects() []string {
	subjects := make([]string, 0, len(events.Types))
	for _, t := range events.Types {
		subjects = append(subjects, s.SubjectPrefix+string(t)+".*")
	}
	return subjects
}

// Provision creates or updates the event stream, the dead-letter stream and
// the worker's durable pull consumer. It is idempotent.
func Provision(ctx context.Context, js jetstream.JetStream, s Streams) (jetstream.Consumer, error) {
	s = s.Defaults()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        s.Stream,
		Description: "sessionctx lifecycle events",
		Subjects:    s.Subjects(),
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      s.MaxAge,
		Duplicates:  2 * time.Minute,
		Replicas:    s.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("provision stream %s: %w", s.Stream, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        s.DeadLetterStream(),
		Description: "sessionctx events that can never be applied, with the reason",
		Subjects:    []string{s.DeadLetterSubject()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      30 * 24 * time.Hour,
		Duplicates:  2 * time.Minute,
		Replicas:    s.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("provision dead-letter stream %s: %w", s.DeadLetterStream(), err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, s.Stream, jetstream.ConsumerConfig{
		Durable:       s.Durable,
		Description:   "sessionctx worker",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: s.MaxAckPending,
		Replicas:      s.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("provision consumer %s: %w", s.Durable, err)
	}
	return cons, nil
}
