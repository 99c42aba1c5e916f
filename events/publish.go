package events

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// New returns an event of type t for tenant with a fresh id and the current
// time, ready to publish.
func New(t Type, tenant, source string, data Data) Event {
	return Event{
		ID: uuid.NewString(), Type: t, Tenant: tenant, Source: source,
		Time: time.Now().UTC().Truncate(time.Millisecond), Data: data,
	}
}

// Publisher publishes events to JetStream. The event id is sent as the
// Nats-Msg-Id header, so a publisher that retries does not create a second
// message within the stream's duplicate window.
type Publisher struct {
	JS jetstream.JetStream
	// SubjectPrefix is put in front of "<type>.<tenant>"; empty in production.
	SubjectPrefix string
}

// Publish validates e, encodes it and publishes it, waiting for the stream's
// acknowledgement.
func (p Publisher) Publish(ctx context.Context, e Event) (*jetstream.PubAck, error) {
	body, err := Encode(e)
	if err != nil {
		return nil, err
	}
	if _, err := Decode(body, e.Subject(), time.Now()); err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: p.SubjectPrefix + e.Subject(), Data: body, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, e.ID)
	ack, err := p.JS.PublishMsg(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("publish %s %s: %w", e.Type, e.ID, err)
	}
	return ack, nil
}
