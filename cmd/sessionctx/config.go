package main

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// developmentSecret signs and verifies tokens in the embedded mode when no
// secret is configured, so that `sessionctx token` works out of the box.
const developmentSecret = "sessionctx-development-secret-not-for-production"

// config is the service's configuration: environment variables, mirrored by
// flags (a flag wins).
type config struct {
	NATSURL         string
	RedisURL        string
	RedisMode       string
	HTTPAddr        string
	Role            string
	JWTSecret       string
	JWKS            string
	JWTIssuer       string
	JWTAudience     string
	SaasSecret      string
	TenantsFile     string
	Stream          string
	StreamReplicas  int
	StreamMaxAge    time.Duration
	MaxAckPending   int
	SubjectPrefix   string
	KeyPrefix       string
	LogLevel        string
	LogFormat       string
	DataDir         string
	EmbeddedNATS    string
	EmbeddedRedis   string
	Retention       time.Duration
	Concurrency     int
	BatchSize       int
	ShutdownTimeout time.Duration
}

// setting is one configuration value: its variable, its flag and its help.
type setting struct {
	env, flag, def, help string
	target               any // *string, *int or *time.Duration
}

func (c *config) settings() []setting {
	return []setting{
		{"NATS_URL", "nats-url", "", "NATS server URL(s), comma separated; empty: an embedded server", &c.NATSURL},
		{"REDIS_URL", "redis-url", "", "redis:// or rediss:// URL; empty: an in-process stand-in", &c.RedisURL},
		{"SESSIONCTX_REDIS_MODE", "redis-mode", "single", "single, or cluster: REDIS_URL names cluster nodes (redis://host:port?addr=host2:port)", &c.RedisMode},
		{"SESSIONCTX_HTTP_ADDR", "http-addr", ":8080", "API listen address", &c.HTTPAddr},
		{"SESSIONCTX_ROLE", "role", "all", "all, api or worker", &c.Role},
		{"SESSIONCTX_JWT_SECRET", "jwt-secret", "", "HS256 secret of shopper and service tokens", &c.JWTSecret},
		{"SESSIONCTX_JWKS", "jwks", "", "JWKS file path or URL for RS256/ES256 tokens", &c.JWKS},
		{"SESSIONCTX_JWT_ISSUER", "jwt-issuer", "", "required iss claim, when set", &c.JWTIssuer},
		{"SESSIONCTX_JWT_AUDIENCE", "jwt-audience", "", "required aud claim, when set", &c.JWTAudience},
		{"SESSIONCTX_SAAS_TOKEN_SECRET", "saas-token-secret", "", "HS256 secret of saas-token headers; default: the JWT secret", &c.SaasSecret},
		{"SESSIONCTX_TENANTS_FILE", "tenants-file", "", "tenants file; default: every tenant on site main, EUR, DE, 1h", &c.TenantsFile},
		{"SESSIONCTX_STREAM", "stream", "SESSION_EVENTS", "event stream name", &c.Stream},
		{"SESSIONCTX_STREAM_REPLICAS", "stream-replicas", "1", "replicas of the streams and consumer (3 on a NATS cluster)", &c.StreamReplicas},
		{"SESSIONCTX_STREAM_MAX_AGE", "stream-max-age", "168h", "how long the stream keeps events (the replay horizon)", &c.StreamMaxAge},
		{"SESSIONCTX_MAX_ACK_PENDING", "max-ack-pending", "65536", "events delivered to all workers together and not yet acknowledged; at least the workers' pull windows (2 x concurrency x batch each)", &c.MaxAckPending},
		{"SESSIONCTX_SUBJECT_PREFIX", "subject-prefix", "", "prefix of every event subject (to share a NATS account)", &c.SubjectPrefix},
		{"SESSIONCTX_KEY_PREFIX", "key-prefix", "sctx:", "prefix of every Redis key", &c.KeyPrefix},
		{"SESSIONCTX_LOG_LEVEL", "log-level", "info", "debug, info, warn or error", &c.LogLevel},
		{"SESSIONCTX_LOG_FORMAT", "log-format", "text", "text or json", &c.LogFormat},
		{"SESSIONCTX_DATA_DIR", "data-dir", "", "storage of the embedded NATS server; default: a temporary directory", &c.DataDir},
		{"SESSIONCTX_EMBEDDED_NATS_ADDR", "embedded-nats-addr", "127.0.0.1:14222", "listen address of the embedded NATS server; the other commands reach it there", &c.EmbeddedNATS},
		{"SESSIONCTX_EMBEDDED_REDIS_ADDR", "embedded-redis-addr", "127.0.0.1:16379", "listen address of the in-process Redis stand-in; the other commands reach it there", &c.EmbeddedRedis},
		{"SESSIONCTX_RETENTION", "retention", "24h", "how long ended sessions' tombstones are kept", &c.Retention},
		{"SESSIONCTX_WORKER_CONCURRENCY", "worker-concurrency", "8", "batches of events a worker applies at once", &c.Concurrency},
		{"SESSIONCTX_WORKER_BATCH", "worker-batch", "128", "most events in one batch (applied in a few pipelined round trips)", &c.BatchSize},
		{"SESSIONCTX_SHUTDOWN_TIMEOUT", "shutdown-timeout", "15s", "how long in-flight work may take at shutdown", &c.ShutdownTimeout},
	}
}

// bind registers the settings as flags on fs, with defaults from getenv.
func (c *config) bind(fs *pflag.FlagSet, getenv func(string) string) error {
	for _, s := range c.settings() {
		def := s.def
		if v := getenv(s.env); v != "" {
			def = v
		}
		help := s.help + " (" + s.env + ")"
		switch p := s.target.(type) {
		case *string:
			fs.StringVar(p, s.flag, def, help)
		case *int:
			n, err := strconv.Atoi(def)
			if err != nil {
				return fmt.Errorf("%s: %q is not a number", s.env, def)
			}
			fs.IntVar(p, s.flag, n, help)
		case *time.Duration:
			d, err := time.ParseDuration(def)
			if err != nil {
				return fmt.Errorf("%s: %q is not a duration like 24h or 90s", s.env, def)
			}
			fs.DurationVar(p, s.flag, d, help)
		}
	}
	return nil
}

// embedded reports whether both servers run in-process: the zero-setup mode,
// the only one that may use the development secret.
func (c *config) embedded() bool { return c.NATSURL == "" && c.RedisURL == "" }

func (c *config) validate() error {
	switch c.Role {
	case "all", "api", "worker":
	default:
		return fmt.Errorf("SESSIONCTX_ROLE: %q is not one of all, api, worker", c.Role)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("SESSIONCTX_LOG_FORMAT: %q is not text or json", c.LogFormat)
	}
	if c.JWTSecret == "" && c.JWKS == "" && !c.embedded() && c.Role != "worker" {
		return fmt.Errorf("SESSIONCTX_JWT_SECRET or SESSIONCTX_JWKS is required (only the embedded mode has a development secret)")
	}
	if c.Retention <= 0 {
		return fmt.Errorf("SESSIONCTX_RETENTION: must be positive")
	}
	return nil
}

// jwtSecret is the configured secret, or the development secret in the
// embedded mode when nothing is configured.
func (c *config) jwtSecret() string {
	if c.JWTSecret == "" && c.JWKS == "" && c.embedded() {
		return developmentSecret
	}
	return c.JWTSecret
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("SESSIONCTX_LOG_LEVEL: %q is not debug, info, warn or error", s)
	}
	return l, nil
}

func (c *config) logger(w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
