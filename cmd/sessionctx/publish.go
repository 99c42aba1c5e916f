package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/sessionctx/sessionctx/events"
)

func publishCommand(cfg *config, stdout, stderr io.Writer) *cobra.Command {
	var (
		tenant, data, file, id, source, at string
	)
	cmd := &cobra.Command{
		Use:   "publish [type]",
		Short: "Publish lifecycle events, for testing and backfills",
		Long: "Publishes one event of the given type with --tenant and --data, or the events of --file\n" +
			"(one CloudEvents JSON envelope per line, '-' for standard input). Every event is validated\n" +
			"first and published with its id as Nats-Msg-Id. Types: " + typeList() + ".",
		Example: "  sessionctx publish cart.created --tenant acme --data '{\"sessionId\":\"s-1\",\"cartId\":\"c-1\"}'\n" +
			"  sessionctx publish --file backfill.jsonl",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var evs []events.Event
			switch {
			case file != "" && len(args) == 0:
				var err error
				if evs, err = readEvents(file, cmd.InOrStdin()); err != nil {
					return err
				}
			case file == "" && len(args) == 1:
				e, err := eventFromFlags(events.Type(args[0]), tenant, data, id, source, at)
				if err != nil {
					return err
				}
				evs = []events.Event{e}
			default:
				return fmt.Errorf("give an event type with --tenant and --data, or --file")
			}
			svc, err := connect(cmd.Context(), cfg, cfg.logger(stderr), false)
			if err != nil {
				return err
			}
			defer svc.Close()
			pub := events.Publisher{JS: svc.js, SubjectPrefix: cfg.SubjectPrefix}
			for i, e := range evs {
				ack, err := pub.Publish(cmd.Context(), e)
				if err != nil {
					return fmt.Errorf("event %d: %w (is the stream there? `sessionctx streams init` creates it)", i+1, err)
				}
				dup := ""
				if ack.Duplicate {
					dup = " (duplicate: already in the stream)"
				}
				fmt.Fprintf(stdout, "published %s %s to %s, sequence %d%s\n", e.Type, e.ID, ack.Stream, ack.Sequence, dup)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&tenant, "tenant", "", "tenant of the event")
	f.StringVar(&data, "data", "", "the event's data as JSON")
	f.StringVar(&file, "file", "", "file of CloudEvents envelopes, one per line ('-': standard input)")
	f.StringVar(&id, "id", "", "event id; default: a new UUID")
	f.StringVar(&source, "source", "sessionctx-cli", "event source")
	f.StringVar(&at, "time", "", "event time, RFC 3339; default: now")
	return cmd
}

func typeList() string {
	s := ""
	for i, t := range events.Types {
		if i > 0 {
			s += ", "
		}
		s += string(t)
	}
	return s
}

func eventFromFlags(t events.Type, tenant, data, id, source, at string) (events.Event, error) {
	if !t.Known() {
		return events.Event{}, fmt.Errorf("%q is not an event type; types: %s", t, typeList())
	}
	if tenant == "" || data == "" {
		return events.Event{}, fmt.Errorf("--tenant and --data are required")
	}
	var d events.Data
	if err := json.Unmarshal([]byte(data), &d); err != nil {
		return events.Event{}, fmt.Errorf("--data: %w", err)
	}
	e := events.New(t, tenant, source, d)
	if id != "" {
		e.ID = id
	}
	if at != "" {
		when, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return events.Event{}, fmt.Errorf("--time: %q is not RFC 3339", at)
		}
		e.Time = when
	}
	return e, nil
}

// readEvents reads and validates CloudEvents envelopes, one per line.
func readEvents(path string, stdin io.Reader) ([]events.Event, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var evs []events.Event
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		e, err := events.Decode(sc.Bytes(), "", time.Now())
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return evs, nil
}
