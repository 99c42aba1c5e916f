package main

import (
	"context"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// run is the whole program: it parses args, reads configuration through
// getenv and writes to stdout and stderr. It returns when ctx is cancelled
// or the command is done.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runWithStdin(ctx, args, getenv, os.Stdin, stdout, stderr)
}

// runWithStdin is run with the standard input given (tests give their own).
func runWithStdin(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := &cobra.Command{
		Use:           "sessionctx",
		Short:         "Session contexts for e-commerce storefronts, kept from lifecycle events",
		Long:          "sessionctx consumes lifecycle events from NATS JetStream, keeps session contexts in Redis\nand serves them over an Emporix-compatible HTTP API. With no command it serves.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(ctx)

	var cfg config
	if err := cfg.bind(root.PersistentFlags(), getenv); err != nil {
		return err
	}
	serve := serveCommand(&cfg, stderr)
	root.RunE = serve.RunE
	root.AddCommand(serve, tokenCommand(&cfg, stdout, stderr), publishCommand(&cfg, stdout, stderr), replayCommand(&cfg, stdout, stderr),
		dlqCommand(&cfg, stdout, stderr), streamsCommand(&cfg, stdout, stderr))
	return root.Execute()
}
