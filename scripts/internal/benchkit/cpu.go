package benchkit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPU accounting from /proc: how many cores each process used during a
// measurement window, and how many the rest of the machine used (the
// "other" part: other people's work makes the numbers noisy).

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

// CPUSnap is the CPU time used so far by this program, by each running
// child of a cluster and by the whole machine.
type CPUSnap struct {
	at    time.Time
	ticks map[string]uint64 // by part: the program's name, the children's
	busy  uint64
}

// SnapCPU reads the CPU time of this program (as the part named after it),
// of each running child (by its name; with its own children when
// CountChildren is set) and of the machine.
func (c *Cluster) SnapCPU() CPUSnap {
	s := CPUSnap{at: time.Now(), ticks: map[string]uint64{}}
	if t, _, ok := procTicks(os.Getpid()); ok {
		s.ticks[c.prog] = t
	}
	for _, p := range c.Procs() {
		if p.Exited() {
			continue
		}
		if t, _, ok := procTicks(p.Pid()); ok {
			s.ticks[p.name] = t
		}
		if p.CountChildren {
			s.ticks[p.name] += childrenTicks(p.Pid())
		}
	}
	s.busy = systemBusy()
	return s
}

// CPUUse sums the CPU used over one or more measured windows; the zero
// value has measured nothing.
type CPUUse struct {
	secs  float64
	ticks map[string]float64 // per part, "other" included
}

// Add accounts the window from a to b: each part seen in both snapshots,
// and "other" for the rest of the machine.
func (u *CPUUse) Add(a, b CPUSnap) {
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return
	}
	if u.ticks == nil {
		u.ticks = map[string]float64{}
	}
	u.secs += secs
	var ours uint64
	for name, t0 := range a.ticks {
		t1, ok := b.ticks[name]
		if !ok || t1 < t0 {
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

// AddExternal accounts cpu, the CPU time of a process that is not one of
// the cluster's children and ran entirely within the windows accounted so
// far (a load generator such as wrk, timed from its rusage), as part: it
// moves that much out of "other" (never below 0).
func (u *CPUUse) AddExternal(part string, cpu time.Duration) {
	if u.ticks == nil {
		u.ticks = map[string]float64{}
	}
	t := cpu.Seconds() * clockTicks
	u.ticks[part] += t
	u.ticks["other"] = max(u.ticks["other"]-t, 0)
}

// Measured says whether any window was accounted.
func (u *CPUUse) Measured() bool { return u != nil && u.secs > 0 }

// Cores returns the average cores used by part over the windows; false
// when the part was not measured.
func (u *CPUUse) Cores(part string) (float64, bool) {
	if !u.Measured() {
		return 0, false
	}
	t, ok := u.ticks[part]
	return t / clockTicks / u.secs, ok
}

// Row formats the cores of each part with two decimals ("-" where not
// measured), then their total.
func (u *CPUUse) Row(parts []string) []string {
	var cells []string
	var total float64
	for _, p := range parts {
		v, ok := u.Cores(p)
		if !ok {
			cells = append(cells, "-")
			continue
		}
		total += v
		cells = append(cells, fmt.Sprintf("%.2f", v))
	}
	return append(cells, fmt.Sprintf("%.2f", total))
}

// Measure runs fn and accounts its CPU in u.
func (c *Cluster) Measure(u *CPUUse, fn func()) {
	a := c.SnapCPU()
	fn()
	u.Add(a, c.SnapCPU())
}

// NewCPUTable returns an empty table of CPU use: a first column named
// first, one per part, "total" and the extra columns; all but the first
// are numbers.
func NewCPUTable(first string, parts []string, extra ...string) *Table {
	head := append(append(append([]string{first}, parts...), "total"), extra...)
	t := &Table{Head: head, Right: make([]bool, len(head))}
	for i := 1; i < len(head); i++ {
		t.Right[i] = true
	}
	return t
}
