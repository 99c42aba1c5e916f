package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Where the CPU goes during a measured window: the processes involved (the
// children, this process, the Redis and NATS servers when they run on this
// machine) and the machine as a whole, from /proc; and what Redis spent its
// time on, from INFO commandstats. Only read, and logged with each figure, to
// tell which side is the bottleneck. Other users of the same servers show up
// in these numbers too.

const clockTicks = 100 // USER_HZ on Linux

type procRef struct {
	name string
	pid  int
}

type cpuWindow struct {
	b      *bench
	start  time.Time
	procs  []procRef
	ticks  []int64
	mach   [3]int64 // busy, total, steal
	redis  map[string]cmdStat
	active bool
}

type cmdStat struct {
	calls int64
	usec  int64
}

// findProcs returns the pids of processes whose command name is comm.
func findProcs(comm string) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/comm")
	var pids []int
	for _, d := range dirs {
		raw, err := os.ReadFile(d)
		if err != nil || strings.TrimSpace(string(raw)) != comm {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(d))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procTicks is a process's user+system CPU time in clock ticks.
func procTicks(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// machineTicks returns busy, total and steal ticks of all CPUs.
func machineTicks() [3]int64 {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return [3]int64{}
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	var total, idle, steal int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
		switch i {
		case 3, 4: // idle, iowait
			idle += n
		case 7:
			steal = n
		}
	}
	return [3]int64{total - idle, total, steal}
}

// cpuStart opens a window over this process, the given children and the
// local Redis and NATS servers.
func (b *bench) cpuStart(ctx context.Context, children ...*child) *cpuWindow {
	w := &cpuWindow{b: b, start: time.Now(), active: true}
	for _, c := range children {
		w.procs = append(w.procs, procRef{c.name, c.ready.PID})
	}
	w.procs = append(w.procs, procRef{"bench", os.Getpid()})
	for _, comm := range []string{"redis-server", "nats-server"} {
		if pids := findProcs(comm); len(pids) == 1 {
			w.procs = append(w.procs, procRef{comm, pids[0]})
		}
	}
	w.ticks = make([]int64, len(w.procs))
	for i, p := range w.procs {
		w.ticks[i] = procTicks(p.pid)
	}
	w.mach = machineTicks()
	w.redis = b.redisCmdStats(ctx)
	return w
}

// redisCmdStats reads INFO commandstats.
func (b *bench) redisCmdStats(ctx context.Context) map[string]cmdStat {
	info, err := b.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil
	}
	out := map[string]cmdStat{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var s cmdStat
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				s.calls = n
			case "usec":
				s.usec = n
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = s
	}
	return out
}

// end closes the window and describes it: each process's CPU use in % of
// one core, the machine's, and Redis's top commands.
func (w *cpuWindow) end(ctx context.Context) string {
	if w == nil || !w.active {
		return ""
	}
	w.active = false
	secs := time.Since(w.start).Seconds()
	var parts []string
	for i, p := range w.procs {
		t := procTicks(p.pid)
		if t < 0 || w.ticks[i] < 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.0f%%", p.name, 100*float64(t-w.ticks[i])/clockTicks/secs))
	}
	m := machineTicks()
	if total := m[1] - w.mach[1]; total > 0 {
		cores := float64(numCPU())
		parts = append(parts, fmt.Sprintf("machine %.0f%% of %.0f%% (steal %.0f%%)",
			100*cores*float64(m[0]-w.mach[0])/float64(total), 100*cores, 100*cores*float64(m[2]-w.mach[2])/float64(total)))
	}
	after := w.b.redisCmdStats(ctx)
	type delta struct {
		name        string
		calls, usec int64
	}
	var ds []delta
	for name, a := range after {
		d := delta{name, a.calls - w.redis[name].calls, a.usec - w.redis[name].usec}
		if d.calls > 0 && name != "info" {
			ds = append(ds, d)
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].usec > ds[j].usec })
	var cmds []string
	for _, d := range ds[:min(4, len(ds))] {
		cmds = append(cmds, fmt.Sprintf("%s %d calls %.1fµs each", d.name, d.calls, float64(d.usec)/float64(d.calls)))
	}
	s := "CPU: " + strings.Join(parts, ", ")
	if len(cmds) > 0 {
		// A script's own commands count both in it and by themselves.
		s += "; redis's top commands: " + strings.Join(cmds, ", ")
	}
	return s
}

// waitQuiet waits, at most maxWait, until the machine is mostly idle (other
// users' builds and tests share it), so that a measured window starts on a
// quiet machine. It logs when the machine stayed busy.
func (b *bench) waitQuiet(ctx context.Context, what string) {
	maxWait := 30 * time.Second
	if b.opts.quick {
		maxWait = time.Second
	}
	deadline := time.Now().Add(maxWait)
	busy := 0.0
	for {
		before := machineTicks()
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
		after := machineTicks()
		if total := after[1] - before[1]; total > 0 {
			busy = float64(numCPU()) * 100 * float64(after[0]-before[0]) / float64(total)
		}
		if busy < 25 {
			return
		}
		if time.Now().After(deadline) {
			logf("WARNING: the machine is %.0f%% busy (of %d%%) with other work before %s: its figures are disturbed", busy, 100*numCPU(), what)
			return
		}
	}
}
