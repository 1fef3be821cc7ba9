package lab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/calclab/calclab/infra/spec"
)

// TokenFile is where a lab keeps the token it generated, in its state dir.
const TokenFile = "token"

// ReadToken sets s's token from <stateDir>/token when lab.yaml leaves it
// empty and a lab was brought up there; it creates nothing, so verbs that
// only look (status, logs, down) leave no file behind. It returns the
// file's path, or "" when lab.yaml sets the token or no token file exists.
func ReadToken(s *spec.Lab, stateDir string) (string, error) {
	if s.Services.Token != "" {
		return "", nil
	}
	path := filepath.Join(stateDir, TokenFile)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("lab token: %w", err)
	}
	s.Services.Token = strings.TrimSpace(string(data))
	return path, nil
}

// EnsureToken makes sure the lab never runs open: when lab.yaml leaves
// services.token empty, the lab's token is read from <stateDir>/token, or
// generated there (32 random bytes, hex, mode 0600) on first use, and set on
// s, so every node and newman get it. It returns the file's path ("" when
// lab.yaml sets the token itself).
func EnsureToken(s *spec.Lab, stateDir string) (string, error) {
	if s.Services.Token != "" {
		return "", nil
	}
	path := filepath.Join(stateDir, TokenFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil && len(strings.TrimSpace(string(data))) >= 32:
		s.Services.Token = strings.TrimSpace(string(data))
		return path, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("lab token: %w", err)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("lab token: %w", err)
	}
	tok := hex.EncodeToString(b[:])
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return "", fmt.Errorf("lab token: %w", err)
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("lab token: %w", err)
	}
	s.Services.Token = tok
	return path, nil
}
