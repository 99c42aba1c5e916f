package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sessionctx/sessionctx/consumer"
	"github.com/sessionctx/sessionctx/events"
)

func dlqCommand(cfg *config, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect, requeue and purge dead-lettered events",
		Long: "Events that can never be applied are kept in the dead-letter stream (" +
			"<stream>_DLQ) with their original bytes and the reason.",
	}
	// withDLQ connects and runs f with the dead-letter stream.
	withDLQ := func(cmd *cobra.Command, f func(svc *services, d consumer.DeadLetters) error) error {
		return withServices(cmd, cfg, stderr, func(svc *services) error {
			return f(svc, consumer.DeadLetters{JS: svc.js, Streams: svc.streams})
		})
	}

	var from uint64
	var limit int
	list := &cobra.Command{
		Use:     "list",
		Short:   "List dead letters with their reasons, oldest first",
		Example: "  sessionctx dlq list --limit 20",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDLQ(cmd, func(_ *services, d consumer.DeadLetters) error {
				dls, err := d.List(cmd.Context(), from, limit)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SEQ\tDEAD-LETTERED\tSUBJECT\tREASON")
				for _, dl := range dls {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", dl.Seq, dl.Time.UTC().Format(time.RFC3339), dl.Subject, truncate(dl.Reason, 100))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if len(dls) == 0 {
					fmt.Fprintln(stdout, "no dead letters")
				}
				return nil
			})
		},
	}
	list.Flags().Uint64Var(&from, "from", 0, "first dead-letter sequence to list")
	list.Flags().IntVar(&limit, "limit", 100, "how many to list")

	show := &cobra.Command{
		Use:     "show SEQ",
		Short:   "Show one dead letter: reason, where it came from, original body",
		Example: "  sessionctx dlq show 12",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := parseSeq(args[0])
			if err != nil {
				return err
			}
			return withDLQ(cmd, func(_ *services, d consumer.DeadLetters) error {
				dl, err := d.Get(cmd.Context(), seq)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "sequence:       %d\ndead-lettered:  %s\nsubject:        %s\nstream seq:     %d\nreason:         %s\nbody:\n%s\n",
					dl.Seq, dl.Time.UTC().Format(time.RFC3339Nano), dl.Subject, dl.StreamSeq, dl.Reason, pretty(dl.Body))
				return nil
			})
		},
	}

	var all bool
	var bodyFile string
	requeue := &cobra.Command{
		Use:   "requeue [SEQ...]",
		Short: "Put dead letters back on the event stream: fixed, or as they were",
		Long: "Republishes dead letters on the event stream and removes them from the dead-letter stream.\n" +
			"With --body, the one named dead letter is replaced by a fixed CloudEvent (its subject follows\n" +
			"from the fixed type and tenant). Without it, the original bytes are republished, for\n" +
			"failures fixed elsewhere (a tenant added to the tenants file). A message that would still\n" +
			"be refused is left where it is and reported.",
		Example: "  sessionctx dlq requeue 12 --body fixed.json\n  sessionctx dlq requeue --all",
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return errors.New("name dead letters by sequence, or give --all")
			}
			if bodyFile != "" && len(args) != 1 {
				return errors.New("--body fixes exactly one dead letter")
			}
			var fixed []byte
			if bodyFile != "" {
				var err error
				if fixed, err = readFile(bodyFile, cmd.InOrStdin()); err != nil {
					return err
				}
			}
			return withDLQ(cmd, func(svc *services, d consumer.DeadLetters) error {
				var dls []consumer.DeadLetter
				if all {
					var err error
					if dls, err = d.List(cmd.Context(), 0, 1<<30); err != nil {
						return err
					}
				}
				for _, a := range args {
					seq, err := parseSeq(a)
					if err != nil {
						return err
					}
					dl, err := d.Get(cmd.Context(), seq)
					if err != nil {
						return err
					}
					dls = append(dls, dl)
				}
				requeued, refused := 0, 0
				for _, dl := range dls {
					subject, body := dl.Subject, dl.Body
					if fixed != nil {
						body = fixed
						e, err := events.Decode(body, "", time.Now())
						if err != nil {
							return fmt.Errorf("--body: %w", err)
						}
						subject = svc.streams.SubjectPrefix + e.Subject()
					}
					if _, _, err := consumer.Decode(svc.streams, svc.tenants, subject, body, time.Now()); err != nil {
						refused++
						fmt.Fprintf(stdout, "dead letter %d would be refused again, left in place: %v\n", dl.Seq, err)
						continue
					}
					ack, err := d.Requeue(cmd.Context(), dl, subject, body)
					if err != nil {
						return err
					}
					requeued++
					fmt.Fprintf(stdout, "dead letter %d requeued as %s sequence %d\n", dl.Seq, ack.Stream, ack.Sequence)
				}
				fmt.Fprintf(stdout, "%d requeued, %d left in place\n", requeued, refused)
				if refused > 0 && !all {
					return errors.New("some dead letters would be refused again")
				}
				return nil
			})
		},
	}
	requeue.Flags().BoolVar(&all, "all", false, "requeue every dead letter that would now be applied")
	requeue.Flags().StringVar(&bodyFile, "body", "", "file with the fixed CloudEvent JSON ('-': standard input)")

	var yes bool
	purge := &cobra.Command{
		Use:     "purge",
		Short:   "Remove every dead letter (asks for confirmation)",
		Example: "  sessionctx dlq purge\n  sessionctx dlq purge --yes   # no question, for scripts",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDLQ(cmd, func(_ *services, d consumer.DeadLetters) error {
				n, err := d.Count(cmd.Context())
				if err != nil {
					return err
				}
				if n == 0 {
					fmt.Fprintln(stdout, "no dead letters")
					return nil
				}
				if !yes {
					in, ok := cmd.InOrStdin().(*os.File)
					if !ok || !term.IsTerminal(int(in.Fd())) {
						return errors.New("refusing to purge without confirmation: give --yes")
					}
					fmt.Fprintf(stdout, "Remove all %d dead letters for good? Type 'purge' to confirm: ", n)
					answer, _ := bufio.NewReader(in).ReadString('\n')
					if strings.TrimSpace(answer) != "purge" {
						return errors.New("not purged")
					}
				}
				purged, err := d.Purge(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%d dead letters purged\n", purged)
				return nil
			})
		},
	}
	purge.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")

	cmd.AddCommand(list, show, requeue, purge)
	return cmd
}

func parseSeq(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a sequence number", s)
	}
	return n, nil
}

func readFile(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(path)
}

func pretty(body []byte) string {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return string(body)
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	return string(out)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
