package cloudinit

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kdomanski/iso9660"
)

// readISO reads every file of an image's root with kdomanski/iso9660's
// reader (which uses the Rock Ridge names) and returns its label.
func readISO(t *testing.T, path string) (string, map[string][]byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := iso9660.OpenImage(f)
	if err != nil {
		t.Fatalf("open image: %v", err)
	}
	label, err := img.Label()
	if err != nil {
		t.Fatalf("label: %v", err)
	}
	root, err := img.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	children, err := root.GetChildren()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, c := range children {
		if c.IsDir() {
			t.Errorf("unexpected directory %q", c.Name())
			continue
		}
		data, err := io.ReadAll(c.Reader())
		if err != nil {
			t.Fatal(err)
		}
		files[c.Name()] = data
	}
	return label, files
}

func sameFiles(t *testing.T, how string, got, want map[string][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: files %v, want %v", how, keys(got), keys(want))
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: %q missing (have %v)", how, name, keys(got))
			continue
		}
		if !bytes.Equal(g, w) {
			t.Errorf("%s: %s differs:\n--- got\n%q\n--- want\n%q", how, name, g, w)
		}
	}
}

func keys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestWriteISO(t *testing.T) {
	c := sample()
	want, err := Files(c)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "seed.iso")
	if err := WriteISO(path, c); err != nil {
		t.Fatal(err)
	}

	t.Run("deterministic", func(t *testing.T) {
		again := filepath.Join(dir, "again.iso")
		if err := WriteISO(again, c); err != nil {
			t.Fatal(err)
		}
		a, _ := os.ReadFile(path)
		b, _ := os.ReadFile(again)
		if !bytes.Equal(a, b) {
			t.Error("two writes of the same config differ")
		}
		left, _ := filepath.Glob(filepath.Join(dir, ".*"))
		if len(left) != 0 {
			t.Errorf("temporary files left behind: %v", left)
		}
	})

	t.Run("kdomanski reader", func(t *testing.T) {
		label, files := readISO(t, path)
		if label != VolumeLabel {
			t.Errorf("label = %q, want %q", label, VolumeLabel)
		}
		sameFiles(t, "kdomanski/iso9660", files, want)
	})

	t.Run("isoinfo", func(t *testing.T) {
		if _, err := exec.LookPath("isoinfo"); err != nil {
			t.Skip("isoinfo not installed (apt-get install genisoimage)")
		}
		d := isoinfo(t, "-d", "-i", path)
		for _, s := range []string{"Volume id: cidata\n", "Rock Ridge signatures version 1 found", "Joliet with UCS level 3 found"} {
			if !strings.Contains(d, s) {
				t.Errorf("isoinfo -d lacks %q:\n%s", s, d)
			}
		}
		// -R: Rock Ridge names (what Linux shows by default);
		// -J: Joliet names (Linux with -o norock, Windows).
		for _, ext := range []string{"-R", "-J"} {
			list := isoinfo(t, ext, "-f", "-i", path)
			names := strings.Fields(list)
			sort.Strings(names)
			if got, w := strings.Join(names, " "), "/meta-data /network-config /user-data"; got != w {
				t.Errorf("isoinfo %s -f lists %q, want %q", ext, got, w)
			}
			files := map[string][]byte{}
			for name := range want {
				files[name] = []byte(isoinfo(t, ext, "-i", path, "-x", "/"+name))
			}
			sameFiles(t, "isoinfo "+ext+" -x", files, want)
		}
		// The plain ISO 9660 names are 8.3 level 1 names.
		plain := strings.Fields(isoinfo(t, "-f", "-i", path))
		sort.Strings(plain)
		if got, w := strings.Join(plain, " "), "/META_DAT.;1 /NETWORK_.;1 /USER_DAT.;1"; got != w {
			t.Errorf("isoinfo -f lists %q, want %q", got, w)
		}
	})

	// The real check: what the Linux kernel's isofs shows cloud-init. It
	// needs root, a loop device and the iso9660 file system; skipped
	// where those are missing (the VM end-to-end test covers it then).
	t.Run("linux mount", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("mounting needs root")
		}
		for _, opts := range []string{"loop,ro", "loop,ro,norock"} { // Rock Ridge, then Joliet
			mnt := t.TempDir()
			out, err := exec.Command("mount", "-t", "iso9660", "-o", opts, path, mnt).CombinedOutput()
			if err != nil {
				t.Skipf("cannot mount an ISO here (%v: %s)", err, bytes.TrimSpace(out))
			}
			entries, err := os.ReadDir(mnt)
			files := map[string][]byte{}
			for _, e := range entries {
				files[e.Name()], _ = os.ReadFile(filepath.Join(mnt, e.Name()))
			}
			if out, uerr := exec.Command("umount", mnt).CombinedOutput(); uerr != nil {
				t.Errorf("umount %s: %v: %s", mnt, uerr, out)
			}
			if err != nil {
				t.Fatal(err)
			}
			sameFiles(t, "mount -o "+opts, files, want)
		}
	})
}

func isoinfo(t *testing.T, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("isoinfo", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("isoinfo %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// TestWriteFlatISOManyFiles exercises the writer beyond the seed: a root
// directory spanning several sectors, empty and multi-sector files.
//
// Names are checked with isoinfo only: kdomanski/iso9660 v0.4.0's reader
// reuses one sector buffer while reading a directory, so the Rock Ridge
// names of records in all but the last directory sector come out wrong.
func TestWriteFlatISOManyFiles(t *testing.T) {
	var files []isoFile
	want := map[string][]byte{}
	var total int64
	for i := range 90 {
		name := fmt.Sprintf("f%03d-some-long-name.txt", i)
		data := bytes.Repeat([]byte{byte('a' + i%26)}, i*97) // 0 .. 8.6 KiB
		files = append(files, isoFile{name, data})
		want[name] = data
		total += int64(len(data))
	}
	path := filepath.Join(t.TempDir(), "many.iso")
	var buf bytes.Buffer
	if err := writeFlatISO(&buf, "MANY", files); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := iso9660.OpenImage(f)
	if err != nil {
		t.Fatal(err)
	}
	if label, _ := img.Label(); label != "MANY" {
		t.Errorf("label %q", label)
	}
	root, err := img.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	children, err := root.GetChildren()
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, c := range children {
		sum += c.Size()
	}
	if len(children) != len(files) || sum != total {
		t.Errorf("kdomanski/iso9660 sees %d files, %d bytes; want %d, %d", len(children), sum, len(files), total)
	}

	if _, err := exec.LookPath("isoinfo"); err != nil {
		t.Skip("isoinfo not installed (apt-get install genisoimage)")
	}
	for _, ext := range []string{"-R", "-J"} {
		names := strings.Fields(isoinfo(t, ext, "-f", "-i", path))
		if len(names) != len(files) {
			t.Errorf("isoinfo %s lists %d files, want %d", ext, len(names), len(files))
		}
		got := map[string][]byte{}
		for _, n := range names {
			got[strings.TrimPrefix(n, "/")] = []byte(isoinfo(t, ext, "-i", path, "-x", n))
		}
		sameFiles(t, "isoinfo "+ext, got, want)
	}
}

func TestWriteFlatISOErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		label string
		files []isoFile
		want  string
	}{
		{"collision", "X", []isoFile{{"meta-data-a", nil}, {"meta-data-b", nil}}, "both map to ISO 9660 name META_DAT.;1"},
		{"duplicate", "X", []isoFile{{"a", nil}, {"a", nil}}, "given twice"},
		{"slash", "X", []isoFile{{"a/b", nil}}, "bad file name"},
		{"empty label", "", nil, "label"},
		{"long label", strings.Repeat("x", 17), nil, "label"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := writeFlatISO(io.Discard, tc.label, tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}
