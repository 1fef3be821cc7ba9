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

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/balancer"
	"github.com/calclab/calclab/services/httpserve"
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

	MaxQueue    int
	TaskTimeout time.Duration // one try on one slave
	// TaskStream sends expressions to each slave on one persistent,
	// pipelined connection (GET /compute/stream) instead of an HTTP
	// request per task or group; slaves without it get HTTP.
	TaskStream bool
	// FastLane serves POST /submit-task with httpserve's fast lane (plain
	// HTTP/1.1 requests) instead of net/http and Echo.
	FastLane          bool
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
	// MandelMaxWork bounds one render's work, width x height x max_iter
	// (the iterations it may take); MandelMaxWorkInFlight bounds the sum
	// over the renders in flight. Beyond the first: 413; the second: 503.
	MandelMaxWork         int64
	MandelMaxWorkInFlight int64
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
		TaskStream:        true,
		FastLane:          true,
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
		// 2.5e10 iterations: a 4K frame at 3000 iterations, ~45 s of two
		// slaves on two shared cores; two such renders at once.
		MandelMaxWork:         25e9,
		MandelMaxWorkInFlight: 50e9,
		TileTimeout:           60 * time.Second,
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
			return nil, fmt.Errorf("%q is not a network such as 192.168.56.0/24 or ::1/128", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Check reports the first setting the master cannot run with, named by
// its command-line flag (cmd/master): a count or duration that must be
// positive, a policy it does not have, an address that is not host:port.
func (c Config) Check() error {
	if err := httpserve.CheckListen(c.Listen); err != nil {
		return fmt.Errorf("--listen %w", err)
	}
	if strings.TrimSpace(c.DataDir) == "" {
		return fmt.Errorf("--data-dir is empty: give the directory of the task store")
	}
	if _, err := balancer.New(c.Policy); err != nil {
		return fmt.Errorf("--policy %q is not a balancing policy; use one of %s", c.Policy, strings.Join(balancer.Names(), ", "))
	}
	if err := api.CheckToken(c.Token); err != nil {
		return fmt.Errorf("--token %w", err)
	}
	if len(c.AllowCIDRs) == 0 {
		return fmt.Errorf("--allow-cidr lists no network: no slave could register; give the networks slaves are in, e.g. 127.0.0.0/8")
	}
	for _, n := range []struct {
		flag string
		v    int64
	}{
		{"max-queue", int64(c.MaxQueue)},
		{"fail-threshold", int64(c.FailThreshold)},
		{"max-batch", int64(c.MaxBatch)},
		{"max-tasks", int64(c.MaxTasks)},
		{"max-operands", int64(c.MaxOperands)},
		{"max-store-bytes", c.MaxStoreBytes},
		{"mandel-max-pixels", int64(c.MandelMaxPixels)},
		{"mandel-max-iter", int64(c.MandelMaxIter)},
		{"mandel-max-work", c.MandelMaxWork},
		{"mandel-max-work-in-flight", c.MandelMaxWorkInFlight},
	} {
		if n.v < 1 {
			return fmt.Errorf("--%s must be at least 1, got %d", n.flag, n.v)
		}
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"task-timeout", c.TaskTimeout},
		{"task-deadline", c.TaskDeadline},
		{"health-interval", c.HealthInterval},
		{"heartbeat-interval", c.HeartbeatInterval},
		{"flush-every", c.FlushEvery},
		{"tile-timeout", c.TileTimeout},
	} {
		if d.v <= 0 {
			return fmt.Errorf("--%s must be a positive duration such as 500ms or 2s, got %s", d.flag, d.v)
		}
	}
	return nil
}
