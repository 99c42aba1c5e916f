package contexts

import (
	"context"
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The store changes Redis only through these Lua programs. Where the server
// has Redis functions (Redis 7), they are loaded as one library and called
// with FCALL: the helpers of common.lua are then made once, when the library
// loads, rather than on every call, which takes about a tenth off the Redis
// time of an event. Elsewhere (miniredis, older Redis) each program runs as a
// script, with EVALSHA.
var (
	//go:embed lua/common.lua
	commonLua string
	//go:embed lua/apply.lua
	applyLua string
	//go:embed lua/edit.lua
	editLua string
	//go:embed lua/login.lua
	loginLua string
	//go:embed lua/logoutall.lua
	logoutAllLua string
	//go:embed lua/mark.lua
	markLua string

	applyProgram     = newProgram("apply", applyLua, true)
	editProgram      = newProgram("edit", editLua, true)
	loginProgram     = newProgram("login", loginLua, false)
	logoutAllProgram = newProgram("logoutall", logoutAllLua, false)
	markProgram      = newProgram("mark", markLua, false)

	programs                = []*program{applyProgram, editProgram, loginProgram, logoutAllProgram, markProgram}
	libraryName, librarySrc = newLibrary(programs)
)

// program is one Lua program: a chunk that reads KEYS and ARGV.
type program struct {
	name   string
	body   string
	script *redis.Script
}

// newProgram makes a program; common programs use the helpers of common.lua.
func newProgram(name, body string, common bool) *program {
	src := body
	if common {
		src = commonLua + body
	}
	return &program{name: name, body: body, script: redis.NewScript(src)}
}

// function is the program's name in the library.
func (p *program) function() string { return libraryName + "_" + p.name }

// newLibrary returns the name and source of the library of programs. The
// name carries a digest of the source, so that replicas of two versions of
// sessionctx, during a rolling update, each call their own.
func newLibrary(ps []*program) (name, src string) {
	var body strings.Builder
	body.WriteString(commonLua)
	for _, p := range ps {
		fmt.Fprintf(&body, "\nlocal function program_%s(KEYS, ARGV)\n%s\nend\n", p.name, p.body)
	}
	sum := sha1.Sum([]byte(body.String()))
	name = "sessionctx_" + hex.EncodeToString(sum[:6])
	for _, p := range ps {
		fmt.Fprintf(&body, "redis.register_function('%s_%s', program_%s)\n", name, p.name, p.name)
	}
	return name, "#!lua name=" + name + "\n" + body.String()
}

// caller sends commands: a client or a pipeline.
type caller interface {
	redis.Scripter
	FCall(ctx context.Context, function string, keys []string, args ...any) *redis.Cmd
}

// call queues or runs a program on c.
func (s *Store) call(ctx context.Context, c caller, p *program, keys []string, args ...any) *redis.Cmd {
	if s.functions.Load() {
		return c.FCall(ctx, p.function(), keys, args...)
	}
	return p.script.EvalSha(ctx, c, keys, args...)
}

// run runs a program outside a pipeline, loading the programs again once
// when Redis has lost them.
func (s *Store) run(ctx context.Context, p *program, keys []string, args ...any) *redis.Cmd {
	for attempt := 0; ; attempt++ {
		if err := s.loadPrograms(ctx); err != nil {
			cmd := redis.NewCmd(ctx)
			cmd.SetErr(err)
			return cmd
		}
		cmd := s.call(ctx, s.rdb, p, keys, args...)
		if !s.lost(cmd.Err()) || attempt == 1 {
			return cmd
		}
	}
}

// loadPrograms loads the programs into Redis once: as a library of
// functions, or as scripts where the server refuses functions.
func (s *Store) loadPrograms(ctx context.Context) error {
	if s.loaded.Load() {
		return nil
	}
	err := s.loadLibrary(ctx)
	var refused redis.Error
	switch {
	case err == nil:
		s.functions.Store(true)
	case errors.As(err, &refused):
		for _, p := range programs {
			if err := p.script.Load(ctx, s.rdb).Err(); err != nil {
				return fmt.Errorf("load scripts (the server refused functions: %v): %w", refused, err)
			}
		}
		s.functions.Store(false)
	default:
		return fmt.Errorf("load functions: %w", err)
	}
	s.loaded.Store(true)
	return nil
}

// loadLibrary loads the library on every primary (replicas receive it from
// their primary).
func (s *Store) loadLibrary(ctx context.Context) error {
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, primary *redis.Client) error {
			return primary.FunctionLoadReplace(ctx, librarySrc).Err()
		})
	}
	return s.rdb.FunctionLoadReplace(ctx, librarySrc).Err()
}

// lost tells whether err says that Redis lost the programs (a restart, or a
// SCRIPT or FUNCTION FLUSH), and if so has the next call load them again.
func (s *Store) lost(err error) bool {
	if err == nil || !(redis.HasErrorPrefix(err, "NOSCRIPT") || strings.Contains(err.Error(), "Function not found")) {
		return false
	}
	s.loaded.Store(false)
	return true
}
