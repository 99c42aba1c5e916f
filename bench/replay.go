package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// replayLine is the summary `sessionctx replay` prints.
var replayLine = regexp.MustCompile(`(\d+) events read in (\S+) \(`)

// sessionctxBinary returns the sessionctx binary: -sessionctx, or one built
// from this module's cmd/sessionctx.
func (b *bench) sessionctxBinary(ctx context.Context) (string, error) {
	if b.opts.sessionctx != "" {
		return b.opts.sessionctx, nil
	}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return "", errors.New("not inside the sessionctx module: run from the repository or pass -sessionctx")
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := filepath.Join(b.dir, "sessionctx")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sessionctx")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build cmd/sessionctx: %w: %s", err, out)
	}
	return bin, nil
}

// binaryBuild builds the sessionctx binary once, possibly ahead of time
// (during the memory figure, which measures no rates).
type binaryBuild struct {
	once sync.Once
	done chan struct{}
	bin  string
	err  error
}

func (bb *binaryBuild) start(ctx context.Context, b *bench) {
	bb.once.Do(func() {
		bb.done = make(chan struct{})
		go func() {
			defer close(bb.done)
			bb.bin, bb.err = b.sessionctxBinary(ctx)
		}()
	})
}

func (bb *binaryBuild) get(ctx context.Context, b *bench) (string, error) {
	bb.start(ctx, b)
	select {
	case <-bb.done:
		return bb.bin, bb.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// replay: `sessionctx replay --rebuild` of the ingest stream into an empty
// key prefix, against the live ingest rate.
func (b *bench) replay(ctx context.Context) error {
	in := b.ingested
	if in == nil {
		return errors.New("the replay figure needs the ingest stream, and ingest did not complete")
	}
	bin, err := b.sessionctxBin.get(ctx, b)
	if err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, bin, "replay", "--help").CombinedOutput(); err != nil || !bytes.Contains(out, []byte("--rebuild")) {
		logf("`sessionctx replay --rebuild` is not available (%v): the replay figure is left out", err)
		return nil
	}
	prefix := b.keyPrefix("replay")
	rctx, cancel := context.WithTimeout(ctx, b.waitTimeout(in.events))
	defer cancel()
	cmd := exec.CommandContext(rctx, bin, "replay", "--rebuild")
	cmd.Env = append(os.Environ(),
		"NATS_URL="+b.natsURL, "REDIS_URL="+b.redisURL,
		"SESSIONCTX_STREAM="+in.streams.Stream, "SESSIONCTX_SUBJECT_PREFIX="+in.streams.SubjectPrefix,
		"SESSIONCTX_KEY_PREFIX="+prefix, "SESSIONCTX_LOG_LEVEL=warn")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 10 * time.Second
	b.waitQuiet(ctx, "the replay")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	win := b.cpuStart(ctx)
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	err = cmd.Wait()
	wall := time.Since(t0)
	use := win.end(ctx)
	if ps := cmd.ProcessState; ps != nil {
		use = fmt.Sprintf("replay process %.0f%%, %s", 100*(ps.UserTime()+ps.SystemTime()).Seconds()/wall.Seconds(), use)
	}
	out := stdout.Bytes()
	if err != nil {
		return fmt.Errorf("sessionctx replay: %w: %s%s", err, out, stderr.String())
	}
	rate := float64(in.events) / wall.Seconds()
	how := "process wall clock"
	if m := replayLine.FindSubmatch(out); m != nil {
		read, _ := strconv.Atoi(string(m[1]))
		d, derr := time.ParseDuration(string(m[2]))
		if read != in.events {
			return fmt.Errorf("sessionctx replay read %d events, the stream holds %d: %s", read, in.events, out)
		}
		if derr == nil && d > 0 {
			rate = float64(read) / d.Seconds()
			how = "replay's own timing"
		}
	}
	logf("sessionctx replay --rebuild: %d events in %s wall clock; %.0f events/s (%s): %s\n\t%s",
		in.events, wall.Round(time.Millisecond), rate, how, strings.TrimSpace(string(out)), use)
	if err := b.compareStates(ctx, in.prefix, prefix, 1000); err != nil {
		return err
	}
	target, pass := check(">=1", rate >= in.rate)
	b.report.add(figure{Name: "replay_rebuild", Value: rate, Unit: "events/s", Baseline: in.rate,
		baselineText: "live ingest", target: target, pass: pass})
	return nil
}

// compareStates checks that up to n sessions of the live ingest hold the
// same state after the rebuild, apart from the processing-counted fields
// (version and modification time).
func (b *bench) compareStates(ctx context.Context, livePrefix, rebuiltPrefix string, n int) error {
	live, err := countKeys(ctx, b.rdb, livePrefix+"s:*")
	if err != nil {
		return err
	}
	rebuilt, err := countKeys(ctx, b.rdb, rebuiltPrefix+"s:*")
	if err != nil {
		return err
	}
	keys, _, err := b.rdb.Scan(ctx, 0, livePrefix+"s:*", int64(n)).Result()
	if err != nil {
		return err
	}
	differ := 0
	var example string
	for _, k := range keys {
		a, err := b.rdb.HGetAll(ctx, k).Result()
		if err != nil {
			return err
		}
		r, err := b.rdb.HGetAll(ctx, rebuiltPrefix+strings.TrimPrefix(k, livePrefix)).Result()
		if err != nil {
			return err
		}
		for _, m := range []map[string]string{a, r} {
			delete(m, "v")
			delete(m, "m")
		}
		if !maps.Equal(a, r) {
			differ++
			if example == "" {
				example = fmt.Sprintf("%s: live %v, rebuilt %v", k, a, r)
			}
		}
	}
	logf("rebuild check: %d session keys live, %d rebuilt; %d of %d sampled sessions differ (apart from version and modifiedAt)",
		live, rebuilt, differ, len(keys))
	if differ > 0 {
		logf("WARNING: rebuilt state differs from the live state, e.g. %s", example)
	}
	return nil
}
