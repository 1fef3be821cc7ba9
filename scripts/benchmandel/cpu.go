package main

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// CPU accounting from /proc (as in scripts/benchcalc/cpu.go): how many cores
// each process used while a scenario was being measured, and how many the
// rest of the machine used (the "other" column: other people's work makes
// the numbers noisy).

// clockTicks is USER_HZ, 100 on every Linux we run on.
const clockTicks = 100

// procTicks returns utime+stime of pid, from /proc/PID/stat.
func procTicks(pid int) (uint64, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, false
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st, true
}

// systemBusy returns the busy ticks of the whole machine.
func systemBusy() uint64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	// user nice system idle iowait irq softirq steal (guest is in user).
	var busy uint64
	for i, v := range f[1:min(len(f), 9)] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy
}

// cpuParts are the columns of the CPU table, in order.
var cpuParts = []string{"benchmandel", "master", "slave-1", "slave-2", "other"}

type cpuSnap struct {
	at    time.Time
	ticks map[string]uint64
	busy  uint64
}

func (c *cluster) snapCPU() cpuSnap {
	s := cpuSnap{at: time.Now(), ticks: map[string]uint64{}}
	if t, ok := procTicks(os.Getpid()); ok {
		s.ticks["benchmandel"] = t
	}
	for _, p := range c.procs() {
		if p.exited() {
			continue
		}
		if t, ok := procTicks(p.pid()); ok {
			s.ticks[p.name] = t
		}
	}
	s.busy = systemBusy()
	return s
}

// cpuAcc sums CPU over one or more measured windows of a scenario.
type cpuAcc struct {
	secs  float64
	ticks map[string]float64 // per part, "other" included
}

// add accounts the window from a to b.
func (u *cpuAcc) add(a, b cpuSnap) {
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return
	}
	if u.ticks == nil {
		u.ticks = map[string]float64{}
	}
	u.secs += secs
	var ours uint64
	for _, name := range cpuParts[:len(cpuParts)-1] {
		t0, ok0 := a.ticks[name]
		t1, ok1 := b.ticks[name]
		if !ok0 || !ok1 || t1 < t0 {
			continue
		}
		u.ticks[name] += float64(t1 - t0)
		ours += t1 - t0
	}
	if b.busy >= a.busy && b.busy > 0 {
		// Our processes' ticks and the machine's are read at slightly
		// different moments: clamp at 0.
		u.ticks["other"] += float64(max(b.busy-a.busy, ours) - ours)
	}
}

// cores returns the average cores used by part over the windows.
func (u *cpuAcc) cores(part string) (float64, bool) {
	if u == nil || u.secs <= 0 {
		return 0, false
	}
	t, ok := u.ticks[part]
	return t / clockTicks / u.secs, ok
}

// measure runs fn and accounts its CPU.
func (c *cluster) measure(u *cpuAcc, fn func()) {
	a := c.snapCPU()
	fn()
	u.add(a, c.snapCPU())
}
