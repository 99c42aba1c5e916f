package consumer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionctx/sessionctx/consumer"
	"github.com/sessionctx/sessionctx/contexts"
	"github.com/sessionctx/sessionctx/events"
	"github.com/sessionctx/sessionctx/internal/testenv"
)

// TestPoisonGoesToDeadLetters interleaves messages that can never be applied
// with valid ones: the valid ones are applied, each poison message lands in
// the dead-letter stream with its reason and original bytes, nothing blocks.
func TestPoisonGoesToDeadLetters(t *testing.T) {
	natsServers(t, func(t *testing.T, n *testenv.NATSEnv) {
		rg := newRig(t, n)
		onlyAcme, err := contexts.ParseTenants([]byte(`{"tenants": {"acme": {"site": {"code": "main", "currency": "EUR", "homeBase": "DE", "language": "de"}}}}`))
		if err != nil {
			t.Fatal(err)
		}
		tenant, _ := onlyAcme.Lookup("acme")
		now := time.Now().UTC().Format(events.TimeFormat)
		valid := func(sid string) string {
			return `{"specversion":"1.0","id":"ok-` + sid + `","source":"t","type":"cart.created","time":"` + now +
				`","tenant":"acme","data":{"sessionId":"` + sid + `","cartId":"c-` + sid + `","extra":"ignored"}}`
		}
		poison := []struct {
			subject, body, reason string
		}{
			{"cart.created.acme", `not json`, "not a JSON CloudEvent"},
			{"cart.created.acme", `{"specversion":"1.0","id":"p2","source":"t","type":"cart.deleted","tenant":"acme","data":{"sessionId":"x"}}`, `type "cart.deleted" is not a known event type`},
			{"cart.created.acme", `{"specversion":"1.0","id":"p3","source":"t","type":"cart.created","tenant":"acme","data":{"sessionId":"x"}}`, "data.cartId is required"},
			{"cart.created.Acme", `{"specversion":"1.0","id":"p4","source":"t","type":"cart.created","tenant":"Acme","data":{"sessionId":"x","cartId":"c"}}`, `tenant "Acme" must match`},
			{"cart.created.acme", `{"specversion":"1.0","id":"p5","source":"t","type":"cart.created","tenant":"other","data":{"sessionId":"x","cartId":"c"}}`, `does not match type "cart.created" and tenant "other"`},
			{"cart.created.other", `{"specversion":"1.0","id":"p6","source":"t","type":"cart.created","tenant":"other","data":{"sessionId":"x","cartId":"c"}}`, `tenant is not configured: "other"`},
			{"cart.created.acme", `{"specversion":"1.0","id":"p7","source":"t","type":"cart.created","tenant":"acme","time":"2099-01-01T00:00:00Z","data":{"sessionId":"x","cartId":"c"}}`, "ahead of the stream's receive time"},
			{"cart.created.acme", `{"specversion":"1.0","id":"p8","source":"t","type":"cart.created","tenant":"acme","data":{"sessionId":"a{b}","cartId":"c"}}`, "data.sessionId \"a{b}\" must match"},
			{"customer.logout.acme", `{"specversion":"1.0","id":"p9","source":"t","type":"customer.logout","tenant":"acme","data":{"sessionId":"x"}}`, "data.customerId is required"},
		}
		if _, err := consumer.Provision(context.Background(), n.JS, rg.streams); err != nil {
			t.Fatal(err)
		}
		for i, p := range poison {
			rg.publish(t, "ok-"+string(rune('a'+i)), "cart.created.acme", []byte(valid(string(rune('a'+i)))))
			rg.publish(t, "p-"+string(rune('a'+i)), p.subject, []byte(p.body))
		}
		w := consumer.New(consumer.Config{JS: n.JS, Streams: rg.streams, Store: rg.store, Tenants: onlyAcme})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		rg.waitDrained(t, 30*time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("worker: %v", err)
		}

		for i := range poison {
			sid := string(rune('a' + i))
			if _, err := rg.store.Get(context.Background(), tenant, sid); err != nil {
				t.Errorf("valid event for session %s was not applied: %v", sid, err)
			}
		}
		dlq, err := n.JS.OrderedConsumer(context.Background(), rg.streams.DeadLetterStream(), jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		batch, err := dlq.Fetch(len(poison)+1, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		// The worker applies messages concurrently, so dead letters come in any order.
		byBody := map[string]jetstream.Msg{}
		for msg := range batch.Messages() {
			byBody[string(msg.Data())] = msg
		}
		if len(byBody) != len(poison) {
			t.Errorf("%d dead letters, want %d", len(byBody), len(poison))
		}
		for _, p := range poison {
			msg, ok := byBody[p.body]
			if !ok {
				t.Errorf("no dead letter with the original bytes %q", p.body)
				continue
			}
			if reason := msg.Headers().Get(consumer.HeaderReason); !strings.Contains(reason, p.reason) {
				t.Errorf("dead letter %q: reason %q, want it to contain %q", p.body, reason, p.reason)
			}
			if got := msg.Headers().Get(consumer.HeaderSubject); got != rg.streams.SubjectPrefix+p.subject {
				t.Errorf("dead letter %q: subject header %q", p.body, got)
			}
		}
	})
}
