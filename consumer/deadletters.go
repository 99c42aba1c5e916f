package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter is a message the worker could never apply, as kept in the
// dead-letter stream.
type DeadLetter struct {
	// Seq is the message's sequence in the dead-letter stream.
	Seq uint64
	// Time is when it was dead-lettered.
	Time time.Time
	// Subject and StreamSeq are where the original was in the event stream.
	Subject   string
	StreamSeq uint64
	Reason    string
	// Body is the original message body.
	Body []byte
}

func deadLetterOf(m *jetstream.RawStreamMsg) DeadLetter {
	seq, _ := strconv.ParseUint(m.Header.Get(HeaderSequence), 10, 64)
	return DeadLetter{
		Seq: m.Sequence, Time: m.Time, Subject: m.Header.Get(HeaderSubject), StreamSeq: seq,
		Reason: m.Header.Get(HeaderReason), Body: m.Data,
	}
}

// DeadLetters reads and repairs the dead-letter stream.
type DeadLetters struct {
	JS      jetstream.JetStream
	Streams Streams
}

func (d DeadLetters) stream(ctx context.Context) (jetstream.Stream, error) {
	name := d.Streams.Defaults().DeadLetterStream()
	s, err := d.JS.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream %s: %w", name, err)
	}
	return s, nil
}

// List returns up to limit dead letters, oldest first, from sequence from on.
func (d DeadLetters) List(ctx context.Context, from uint64, limit int) ([]DeadLetter, error) {
	s, err := d.stream(ctx)
	if err != nil {
		return nil, err
	}
	st := s.CachedInfo().State
	var out []DeadLetter
	if st.Msgs == 0 {
		return nil, nil
	}
	for seq := max(from, st.FirstSeq, 1); seq <= st.LastSeq && len(out) < limit; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // requeued or purged
		}
		if err != nil {
			return nil, fmt.Errorf("read dead letter %d: %w", seq, err)
		}
		out = append(out, deadLetterOf(m))
	}
	return out, nil
}

// Count returns how many dead letters the stream holds.
func (d DeadLetters) Count(ctx context.Context) (uint64, error) {
	s, err := d.stream(ctx)
	if err != nil {
		return 0, err
	}
	return s.CachedInfo().State.Msgs, nil
}

// Get returns one dead letter.
func (d DeadLetters) Get(ctx context.Context, seq uint64) (DeadLetter, error) {
	s, err := d.stream(ctx)
	if err != nil {
		return DeadLetter{}, err
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	return deadLetterOf(m), nil
}

// Requeue publishes body (the original, or a fixed one) on subject of the
// event stream and removes the dead letter. The message id is derived from
// the dead letter, so a requeue that is retried publishes once.
func (d DeadLetters) Requeue(ctx context.Context, dl DeadLetter, subject string, body []byte) (*jetstream.PubAck, error) {
	s, err := d.stream(ctx)
	if err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("requeue-%s-%d", s.CachedInfo().Config.Name, dl.Seq))
	ack, err := d.JS.PublishMsg(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("requeue dead letter %d: %w", dl.Seq, err)
	}
	if err := s.DeleteMsg(ctx, dl.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return ack, fmt.Errorf("requeued dead letter %d, but could not remove it: %w", dl.Seq, err)
	}
	return ack, nil
}

// Purge removes every dead letter and returns how many there were.
func (d DeadLetters) Purge(ctx context.Context) (uint64, error) {
	s, err := d.stream(ctx)
	if err != nil {
		return 0, err
	}
	n := s.CachedInfo().State.Msgs
	if err := s.Purge(ctx); err != nil {
		return 0, fmt.Errorf("purge dead letters: %w", err)
	}
	return n, nil
}
