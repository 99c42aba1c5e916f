package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/sessionctx/sessionctx/consumer"
)

func streamsCommand(cfg *config, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "streams",
		Short: "Create and inspect the event stream, its consumer and the dead-letter stream",
	}
	initCmd := &cobra.Command{
		Use:     "init",
		Short:   "Create or update the streams and the worker's consumer (idempotent)",
		Example: "  SESSIONCTX_STREAM_REPLICAS=3 sessionctx streams init",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withServices(cmd, cfg, stderr, func(svc *services) error {
				if _, err := consumer.Provision(cmd.Context(), svc.js, svc.streams); err != nil {
					return err
				}
				s := svc.streams
				fmt.Fprintf(stdout, "stream %s (subjects %v, max age %s, %d replicas), dead-letter stream %s, consumer %s: ready\n",
					s.Stream, s.Subjects(), s.MaxAge, s.Replicas, s.DeadLetterStream(), s.Durable)
				return nil
			})
		},
	}
	status := &cobra.Command{
		Use:     "status",
		Short:   "Show messages, consumer lag, pending acks, redeliveries and dead letters",
		Example: "  sessionctx streams status",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withServices(cmd, cfg, stderr, func(svc *services) error {
				ctx, s := cmd.Context(), svc.streams
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				for _, name := range []string{s.Stream, s.DeadLetterStream()} {
					st, err := svc.js.Stream(ctx, name)
					if errors.Is(err, jetstream.ErrStreamNotFound) {
						return fmt.Errorf("stream %s does not exist: `sessionctx streams init` creates it", name)
					}
					if err != nil {
						return err
					}
					i := st.CachedInfo()
					fmt.Fprintf(tw, "stream %s\tmessages %d\tbytes %d\tsequences %d..%d\toldest %s\treplicas %d\n", name,
						i.State.Msgs, i.State.Bytes, i.State.FirstSeq, i.State.LastSeq, ago(i.State.FirstTime, i.State.Msgs), i.Config.Replicas)
				}
				c, err := svc.js.Consumer(ctx, s.Stream, s.Durable)
				if errors.Is(err, jetstream.ErrConsumerNotFound) {
					fmt.Fprintf(tw, "consumer %s\tdoes not exist: no worker has started\n", s.Durable)
				} else if err != nil {
					return err
				} else {
					ci := c.CachedInfo()
					fmt.Fprintf(tw, "consumer %s\tlag %d\tack pending %d\tredelivered %d\twaiting pulls %d\tlast delivered seq %d\n", s.Durable,
						ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting, ci.Delivered.Stream)
				}
				return tw.Flush()
			})
		},
	}
	cmd.AddCommand(initCmd, status)
	return cmd
}

func ago(t time.Time, msgs uint64) string {
	if msgs == 0 || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339) + " (" + time.Since(t).Round(time.Second).String() + " ago)"
}
