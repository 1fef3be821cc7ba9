package benchkit

import (
	"bufio"
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// SysInfo describes the machine and the toolchain, for a report's header.
type SysInfo struct {
	Date      string // when the run started
	Uname     string // uname -srm
	CPUModel  string // from /proc/cpuinfo
	GoVersion string // go version, or this program's runtime
	BinGo     string // the Go that built binDir's master
	Load      string // /proc/loadavg
	Cores     int    // logical CPUs
}

// GatherSysInfo reads the machine's description now; binDir holds the
// master binary the benchmark runs.
func GatherSysInfo(binDir string) SysInfo {
	in := SysInfo{Date: time.Now().Format("2006-01-02 15:04:05 -0700 MST"), Cores: runtime.NumCPU()}
	if out, err := exec.Command("uname", "-srm").Output(); err == nil {
		in.Uname = strings.TrimSpace(string(out))
	}
	in.CPUModel = cpuModel()
	in.GoVersion = runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	if out, err := exec.Command("go", "version").Output(); err == nil {
		in.GoVersion = strings.TrimSpace(string(out))
	}
	if bi, err := buildinfo.ReadFile(filepath.Join(binDir, "master")); err == nil {
		in.BinGo = bi.GoVersion
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(data)); len(f) >= 3 {
			in.Load = fmt.Sprintf("%s %s %s (1, 5, 15 min) at start", f[0], f[1], f[2])
		}
	}
	return in
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name", "Hardware", "cpu model", "uarch":
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// HeaderLines are the first lines of a report's header: date, host, cpu
// and go.
func (in SysInfo) HeaderLines() [][2]string {
	goLine := in.GoVersion
	if in.BinGo != "" {
		goLine += fmt.Sprintf(" (bin/master built with %s)", in.BinGo)
	}
	return [][2]string{
		{"date", in.Date},
		{"host", in.Uname},
		{"cpu", fmt.Sprintf("%s, %d cores (logical CPUs)", in.CPUModel, in.Cores)},
		{"go", goLine},
	}
}

// CapacityPhrase describes the two slaves' capacities: "capacity 4 each"
// or "capacity 4 and 8".
func CapacityPhrase(capacity [2]int) string {
	if capacity[0] == capacity[1] {
		return fmt.Sprintf("capacity %d each", capacity[0])
	}
	return fmt.Sprintf("capacity %d and %d", capacity[0], capacity[1])
}

// Doc writes the parts of a report to W: as plain text, or with Markdown
// set as Markdown (for docs/benchmarks.md).
type Doc struct {
	W        io.Writer
	Markdown bool
}

// Blank writes an empty line.
func (d Doc) Blank() { fmt.Fprintln(d.W) }

// Header writes the title (in text followed by the source in brackets)
// and the "key: value" lines; in text the values are aligned at keyWidth.
func (d Doc) Header(title, source string, keyWidth int, lines [][2]string) {
	if d.Markdown {
		fmt.Fprintln(d.W, "### "+title)
		fmt.Fprintln(d.W)
		for _, kv := range lines {
			fmt.Fprintf(d.W, "- %s: %s\n", kv[0], kv[1])
		}
		return
	}
	fmt.Fprintf(d.W, "%s (%s)\n", title, source)
	for _, kv := range lines {
		fmt.Fprintf(d.W, "%-*s %s\n", keyWidth, kv[0]+":", kv[1])
	}
}

// Table writes t.
func (d Doc) Table(t *Table) {
	if d.Markdown {
		t.Markdown(d.W)
	} else {
		t.Text(d.W)
	}
}

// List writes lines as they are in text and as list items in Markdown.
func (d Doc) List(lines []string) {
	for _, l := range lines {
		if d.Markdown {
			l = "- " + l
		}
		fmt.Fprintln(d.W, l)
	}
}

// CaptionedTable writes a blank line, the caption and t, unless t has no
// rows.
func (d Doc) CaptionedTable(caption string, t *Table) {
	if len(t.Rows) == 0 {
		return
	}
	fmt.Fprintln(d.W, "\n"+caption)
	if d.Markdown {
		fmt.Fprintln(d.W)
	}
	d.Table(t)
}

// Errors writes the error lines, if any, under a heading.
func (d Doc) Errors(errs []string) {
	if len(errs) == 0 {
		return
	}
	if !d.Markdown {
		fmt.Fprintln(d.W, "\nERRORS (first distinct messages):")
		for _, e := range errs {
			fmt.Fprintln(d.W, "  "+e)
		}
		return
	}
	fmt.Fprintln(d.W, "\n**Errors** (first distinct messages):")
	fmt.Fprintln(d.W)
	for _, e := range errs {
		fmt.Fprintln(d.W, "- `"+strings.ReplaceAll(e, "`", "'")+"`")
	}
}

// Logs writes Cluster.LogSummary's lines, if any, under a heading.
func (d Doc) Logs(logs []string) {
	if len(logs) == 0 {
		return
	}
	fmt.Fprintln(d.W, "\nService logs (--log-level warn):")
	if !d.Markdown {
		for _, l := range logs {
			fmt.Fprintln(d.W, "  "+l)
		}
		return
	}
	fmt.Fprintln(d.W)
	for _, l := range logs {
		fmt.Fprintln(d.W, "- `"+strings.ReplaceAll(strings.TrimSpace(l), "`", "'")+"`")
	}
}

// Footer writes a blank line and the closing paragraphs, led by an
// INTERRUPTED one when the run was cut short: wrapped at 100 columns in
// text, separated by blank lines in Markdown.
func (d Doc) Footer(interrupted bool, paras []string) {
	if interrupted {
		paras = append([]string{"INTERRUPTED: the run was stopped before every scenario finished."}, paras...)
	}
	fmt.Fprintln(d.W)
	for _, p := range paras {
		if d.Markdown {
			fmt.Fprintln(d.W, p)
			fmt.Fprintln(d.W)
		} else {
			fmt.Fprintln(d.W, Wrap(p, 100))
		}
	}
}
