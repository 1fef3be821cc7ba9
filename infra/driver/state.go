package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// State is a driver's record of what it created, kept as JSON in
// <state dir>/<provider>-state.json (local-state.json, qemu-state.json,
// hyperv-state.json): what Nodes reads and what Down removes. T is the
// driver's own record type.
type State[T any] struct {
	// Path is the JSON file.
	Path string
	// Corrupt is added to the error for a file that does not parse: what
	// to stop by hand before removing it.
	Corrupt string
}

// StateFile is the state of provider under stateDir.
func StateFile[T any](stateDir, provider, corrupt string) State[T] {
	return State[T]{Path: filepath.Join(stateDir, provider+"-state.json"), Corrupt: corrupt}
}

// Load reads the state into a new T; a missing file is the zero T.
func (s State[T]) Load() (*T, error) {
	v := new(T)
	data, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return v, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lab state: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("lab state %s is corrupt (%s, then remove it): %w", s.Path, s.Corrupt, err)
	}
	return v, nil
}

// Save writes v atomically (a temporary file renamed over the old one).
func (s State[T]) Save(v *T) error {
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(s.Path), err)
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("lab state: %w", err)
	}
	tmp := s.Path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	return os.Rename(tmp, s.Path)
}

// Remove deletes the state file (and a leftover temporary one).
func (s State[T]) Remove() error {
	var errs []error
	for _, p := range []string{s.Path, s.Path + ".tmp"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
