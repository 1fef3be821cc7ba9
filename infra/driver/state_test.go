package driver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type rec struct {
	Nodes map[string]int `json:"nodes"`
}

func TestState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".lab")
	s := StateFile[rec](dir, "hyperv", "remove the VMs by hand")
	if s.Path != filepath.Join(dir, "hyperv-state.json") {
		t.Fatalf("path %s", s.Path)
	}
	v, err := s.Load()
	if err != nil || v.Nodes != nil {
		t.Fatalf("missing file: %+v, %v", v, err)
	}
	if err := s.Save(&rec{Nodes: map[string]int{"master": 42}}); err != nil {
		t.Fatal(err)
	}
	if v, err = s.Load(); err != nil || v.Nodes["master"] != 42 {
		t.Fatalf("round trip: %+v, %v", v, err)
	}
	if err := os.WriteFile(s.Path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(); err == nil || !strings.Contains(err.Error(), "remove the VMs by hand") {
		t.Fatalf("corrupt file: %v", err)
	}
	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path); !os.IsNotExist(err) {
		t.Fatalf("state file left: %v", err)
	}
	if err := s.Remove(); err != nil {
		t.Errorf("second remove: %v", err)
	}
}
