package consumer_test

import (
	"context"
	"testing"

	"github.com/sessionctx/sessionctx/consumer"
	"github.com/sessionctx/sessionctx/internal/testenv"
)

// TestProvisionMaxAckPending checks that the consumer holds the configured
// number of unacknowledged deliveries, the default when none is set, and
// that provisioning again updates an existing consumer: an operator who adds
// workers raises the bound with a restart.
func TestProvisionMaxAckPending(t *testing.T) {
	natsServers(t, func(t *testing.T, n *testenv.NATSEnv) {
		steps := []struct {
			name string
			set  int
			want int
		}{
			{"default", 0, consumer.DefaultMaxAckPending},
			{"lowered", 5000, 5000},
			{"raised on an existing consumer", 200000, 200000},
		}
		for _, step := range steps {
			streams := consumer.Streams{Stream: n.Stream, SubjectPrefix: n.SubjectPrefix, MaxAckPending: step.set}
			cons, err := consumer.Provision(context.Background(), n.JS, streams)
			if err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			if got := cons.CachedInfo().Config.MaxAckPending; got != step.want {
				t.Errorf("%s: consumer MaxAckPending %d, want %d", step.name, got, step.want)
			}
		}
	})
}

// TestDefaultMaxAckPendingHoldsDefaultWorkers checks that the default bound
// holds the pull windows of many workers at their defaults.
func TestDefaultMaxAckPendingHoldsDefaultWorkers(t *testing.T) {
	window := consumer.New(consumer.Config{}).PullWindow()
	if workers := consumer.DefaultMaxAckPending / window; workers < 16 {
		t.Errorf("the default max ack pending (%d) holds the pull windows (%d) of %d workers, want at least 16",
			consumer.DefaultMaxAckPending, window, workers)
	}
}
