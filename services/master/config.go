// Package master is calclab's master service: the seed's HTTP API, the
// registry of slaves, the dispatcher that balances tasks across them, the
// persistent task store and the Prometheus metrics.
package master

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// Config is every setting of the master; cmd/master fills it from flags and
// environment variables.
type Config struct {
	Listen  string
	DataDir string
	// Policy names the balancing policy (see balancer.Names).
	Policy string
	// Token, when set, must be presented as a Bearer token by slaves.
	Token string
	// AllowCIDRs are the networks slave webhooks may live in.
	AllowCIDRs []netip.Prefix

	MaxQueue          int
	TaskTimeout       time.Duration // one try on one slave
	TaskDeadline      time.Duration // acceptance to final status
	HealthInterval    time.Duration
	HeartbeatInterval time.Duration
	FailThreshold     int

	MaxBodyBytes int64
	// BodyTimeout bounds the time a client may take to send a request
	// body (408 after).
	BodyTimeout time.Duration
	// MaxConns bounds the connections served at once.
	MaxConns      int
	MaxBatchBytes int64
	MaxBatch      int
	MaxTasks      int
	FlushEvery    time.Duration
	// MaxOperands bounds the operands of one operation task (beyond: 413).
	MaxOperands int
	// MaxRequestBytes bounds the request stored with a task: expression or
	// operands, hash key and request id (beyond: 413).
	MaxRequestBytes int
	// MaxStoreBytes bounds the task store by size (oldest finished tasks
	// are dropped past it), as MaxTasks does by count.
	MaxStoreBytes int64

	// MandelMaxPixels and MandelMaxIter bound one Mandelbrot render.
	MandelMaxPixels int
	MandelMaxIter   int
	// TileTimeout bounds one try of one tile on one slave.
	TileTimeout time.Duration

	Logger *slog.Logger
}

// Defaults returns the configuration documented in the README.
func Defaults() Config {
	return Config{
		Listen:            "127.0.0.1:5000",
		DataDir:           "data/master",
		Policy:            "least-conn",
		AllowCIDRs:        []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		MaxQueue:          10000,
		TaskTimeout:       5 * time.Second,
		TaskDeadline:      30 * time.Second,
		HealthInterval:    time.Second,
		HeartbeatInterval: 2 * time.Second,
		FailThreshold:     3,
		MaxBodyBytes:      64 << 10,
		BodyTimeout:       30 * time.Second,
		MaxConns:          4096,
		MaxBatchBytes:     16 << 20,
		MaxBatch:          100000,
		MaxTasks:          100000,
		FlushEvery:        20 * time.Millisecond,
		MaxOperands:       256,
		MaxRequestBytes:   8 << 10,
		MaxStoreBytes:     256 << 20,
		MandelMaxPixels:   4096 * 4096,
		MandelMaxIter:     100000,
		TileTimeout:       60 * time.Second,
	}
}

// ParseCIDRs parses a comma-separated list of networks.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("allowed network %q: %w", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
