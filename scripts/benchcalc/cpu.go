package main

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// CPU accounting from /proc: how many cores each process used during a
// measurement window, and how many the rest of the machine used (the
// "other" column: other engineers' work makes the numbers noisy).

// clockTicks is USER_HZ, 100 on every Linux we run on.
const clockTicks = 100

// procTicks returns utime+stime of pid and its parent pid, from
// /proc/PID/stat.
func procTicks(pid int) (ticks uint64, ppid int, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st, ppid, true
}

// childrenTicks sums the ticks of pid's live children (nginx's workers).
func childrenTicks(pid int) uint64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var sum uint64
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if t, ppid, ok := procTicks(n); ok && ppid == pid {
			sum += t
		}
	}
	return sum
}

// systemTicks returns busy and total ticks of the whole machine.
func systemTicks() (busy, total uint64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	// user nice system idle iowait irq softirq steal (guest is in user).
	for i, v := range f[1:min(len(f), 9)] {
		n, _ := strconv.ParseUint(v, 10, 64)
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, total
}

// cpuParts are the columns of the CPU table, in order.
var cpuParts = []string{"benchcalc", "master", "slave-1", "slave-2", "nginx", "other"}

type cpuSnap struct {
	at    time.Time
	ticks map[string]uint64
	busy  uint64
}

// cpuUse is cores used per part over a window; nil when not measured.
type cpuUse map[string]float64

func (c *cluster) snapCPU() cpuSnap {
	s := cpuSnap{at: time.Now(), ticks: map[string]uint64{}}
	if t, _, ok := procTicks(os.Getpid()); ok {
		s.ticks["benchcalc"] = t
	}
	add := func(name string, p *proc, children bool) {
		if p == nil || p.exited() {
			return
		}
		if t, _, ok := procTicks(p.pid()); ok {
			s.ticks[name] = t
		}
		if children {
			s.ticks[name] += childrenTicks(p.pid())
		}
	}
	add("master", c.master, false)
	add("slave-1", c.slaves[0], false)
	add("slave-2", c.slaves[1], false)
	add("nginx", c.nginx, true)
	s.busy, _ = systemTicks()
	return s
}

func cpuBetween(a, b cpuSnap) cpuUse {
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return nil
	}
	use := cpuUse{}
	var ours float64
	for _, name := range cpuParts[:len(cpuParts)-1] {
		t0, ok0 := a.ticks[name]
		t1, ok1 := b.ticks[name]
		if !ok0 || !ok1 || t1 < t0 {
			continue
		}
		v := float64(t1-t0) / clockTicks / secs
		use[name] = v
		ours += v
	}
	if b.busy >= a.busy && b.busy > 0 {
		use["other"] = max(0, float64(b.busy-a.busy)/clockTicks/secs-ours)
	}
	return use
}
