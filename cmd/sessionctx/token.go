package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/sessionctx/sessionctx/internal/auth"
)

func tokenCommand(cfg *config, stdout, stderr io.Writer) *cobra.Command {
	var spec auth.TokenSpec
	var manage bool
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Mint an HS256 token for local use",
		Long: "Mints a shopper token (--tenant and --session, plus --customer for a logged-in customer)\n" +
			"or a service token (--tenant --manage), signed with SESSIONCTX_JWT_SECRET, or with the\n" +
			"development secret of the embedded mode when no secret is configured.",
		Example: "  sessionctx token --tenant acme --session s-1\n" +
			"  sessionctx token --tenant acme --session s-1 --customer 31746755\n" +
			"  sessionctx token --tenant acme --manage",
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if spec.Tenant == "" {
				return fmt.Errorf("--tenant is required")
			}
			if spec.SessionID == "" && !manage {
				return fmt.Errorf("--session is required for a shopper token (or --manage for a service token)")
			}
			if manage {
				spec.Scopes = append(spec.Scopes, auth.ScopeManage)
			}
			spec.Issuer, spec.Audience = cfg.JWTIssuer, cfg.JWTAudience
			secret := cfg.jwtSecret()
			if secret == "" {
				return fmt.Errorf("SESSIONCTX_JWT_SECRET is not set: tokens for a JWKS deployment come from its login service")
			}
			if secret == developmentSecret {
				fmt.Fprintln(stderr, "sessionctx: signing with the development secret of the embedded mode")
			}
			token, err := auth.Mint([]byte(secret), spec)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, token)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.Tenant, "tenant", "", "tenant the token is for")
	f.StringVar(&spec.SessionID, "session", "", "session id (sid claim) of a shopper token")
	f.StringVar(&spec.CustomerID, "customer", "", "customer id (sub claim); empty for an anonymous token")
	f.BoolVar(&manage, "manage", false, "add the management scope "+auth.ScopeManage)
	f.DurationVar(&spec.TTL, "ttl", time.Hour, "lifetime of the token")
	return cmd
}
