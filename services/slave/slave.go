// Package slave is calclab's worker service: it evaluates calculator tasks
// (and renders Mandelbrot tiles), registers itself with the master, keeps a
// heartbeat, and on shutdown stops taking work, finishes what it has and
// deregisters.
package slave

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/calc"
	"github.com/calclab/calclab/services/httpserve"
	"github.com/calclab/calclab/services/mandel"
	"github.com/calclab/calclab/services/taskstream"
)

// Config is every setting of a slave; cmd/slave fills it from flags and
// environment variables.
type Config struct {
	Listen string
	// Master is the master's base URL; empty runs the slave stand-alone.
	Master string
	// ID is the slave's id; empty lets the master choose one.
	ID string
	// Advertise is the URL the master calls; default http://<Listen>.
	Advertise string
	Token     string
	// Capacity is the number of jobs evaluated at once (default NumCPU).
	Capacity     int
	MaxBodyBytes int64
	// MaxBatch bounds the expressions of one /compute/batch request.
	MaxBatch int
	// MandelLimits bounds one Mandelbrot tile.
	MandelLimits mandel.Limits
	Logger       *slog.Logger
}

// Defaults returns the configuration documented in the README.
func Defaults() Config {
	return Config{
		Listen:       "127.0.0.1:6001",
		Master:       "http://127.0.0.1:5000",
		Capacity:     runtime.NumCPU(),
		MaxBodyBytes: 16 << 20,
		MaxBatch:     100000,
		MandelLimits: DefaultMandelLimits,
	}
}

// DefaultMandelLimits bound one tile: 4 Mpixel, 16384 a side, 100,000
// iterations. The side is the master's widest frame: /mandelbrot/render
// sends bands of whole frame rows (the pixels bound the memory).
var DefaultMandelLimits = mandel.Limits{MaxPixels: 1 << 22, MaxIter: 100000, MaxDim: 16384}

// Slave is a running worker.
type Slave struct {
	cfg      Config
	log      *slog.Logger
	echo     *echo.Echo
	reg      *prometheus.Registry
	client   *http.Client
	sem      chan struct{}
	inflight atomic.Int64
	done     atomic.Uint64
	draining atomic.Bool
	id       atomic.Pointer[string]
	secret   atomic.Pointer[string] // given by the master at registration
	streams  streams                // open task streams (GET /compute/stream)
	evalOK   prometheus.Counter
	evalErr  prometheus.Counter
	tiles    prometheus.Counter
	// Task stream: groups read and the expressions in them.
	streamGroups, streamExprs prometheus.Counter
}

// New builds a slave's HTTP API. Call Serve.
func New(cfg Config) (*Slave, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = runtime.NumCPU()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 16 << 20
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 100000
	}
	if cfg.MandelLimits == (mandel.Limits{}) {
		cfg.MandelLimits = DefaultMandelLimits
	}
	s := &Slave{
		cfg:    cfg,
		log:    cfg.Logger,
		reg:    prometheus.NewRegistry(),
		client: httpserve.Client(nil),
		sem:    make(chan struct{}, cfg.Capacity),
	}
	id, secret := cfg.ID, ""
	s.id.Store(&id)
	s.secret.Store(&secret)
	s.streams.conns = make(map[net.Conn]struct{})
	evals := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "calclab_slave_evaluations_total", Help: "Expressions evaluated, by outcome (ok or error).",
	}, []string{"outcome"})
	s.evalOK, s.evalErr = evals.WithLabelValues("ok"), evals.WithLabelValues("error")
	s.tiles = prometheus.NewCounter(prometheus.CounterOpts{Name: "calclab_slave_tiles_total", Help: "Mandelbrot tiles rendered."})
	s.streamGroups = prometheus.NewCounter(prometheus.CounterOpts{Name: "calclab_slave_stream_groups_total",
		Help: "Groups of expressions read at once from the master's task stream (one evaluation slot and one write of answers each)."})
	s.streamExprs = prometheus.NewCounter(prometheus.CounterOpts{Name: "calclab_slave_stream_expressions_total",
		Help: "Expressions received on the master's task stream."})
	s.reg.MustRegister(s.streamGroups, s.streamExprs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "calclab_slave_streams_open",
		Help: "Task streams open (one per master connection)."}, s.streams.open))
	s.reg.MustRegister(s.tiles,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "calclab_calc_shape_cache_hits_total", Help: "Expressions whose compiled shape was reused."},
			func() float64 { h, _ := calc.CacheStats(); return float64(h) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "calclab_calc_shape_cache_misses_total", Help: "Expressions compiled from scratch."},
			func() float64 { _, m := calc.CacheStats(); return float64(m) }))
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), evals,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "calclab_slave_in_flight",
			Help: "Requests this slave is evaluating or holding for a free slot (its own count; the master's view is calclab_dispatch_in_flight)."},
			func() float64 { return float64(s.inflight.Load()) }))
	e := httpserve.New(s.log, httpserve.NewMetrics(s.reg, "slave"))
	e.Use(httpserve.BodyDeadline(httpserve.DefaultBodyTimeout))
	e.POST("/compute", s.compute)
	e.POST("/compute/batch", s.computeBatch)
	e.GET(taskstream.Path, s.computeStream)
	e.GET("/mandelbrot/tile", s.tile)
	e.GET("/", s.seedTile)
	e.GET("/health", s.health)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})))
	s.echo = e
	return s, nil
}

// Handler is the slave's HTTP API.
func (s *Slave) Handler() http.Handler { return s.echo }

// Metrics is the slave's Prometheus registry, as GET /metrics serves it.
func (s *Slave) Metrics() prometheus.Gatherer { return s.reg }

// ID is the id the master gave this slave ("" before registration).
func (s *Slave) ID() string { return *s.id.Load() }

// Secret is the secret the master gave this slave at registration ("" before).
func (s *Slave) Secret() string { return *s.secret.Load() }

// Run listens on cfg.Listen and serves until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		// The command's name prefixes this (no "slave: slave: ...").
		return fmt.Errorf("%w (is the port taken? choose another with --listen)", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln, registered with the master, until ctx ends; then it
// stops taking work, deregisters, and finishes in-flight requests.
func (s *Slave) Serve(ctx context.Context, ln net.Listener) error {
	adv := s.cfg.Advertise
	if adv == "" {
		host, port, _ := net.SplitHostPort(ln.Addr().String())
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			ln.Close()
			return fmt.Errorf("listening on %s: set --advertise to the URL the master can reach", ln.Addr())
		}
		adv = "http://" + net.JoinHostPort(host, port)
	}
	s.log.Info("slave listening", "addr", ln.Addr().String(), "advertise", adv, "capacity", s.cfg.Capacity, "master", s.cfg.Master)
	srvCtx, stopServer := context.WithCancel(context.Background())
	defer stopServer()
	errc := make(chan error, 1)
	go func() {
		errc <- httpserve.Serve(srvCtx, httpserve.LimitListener(ln, httpserve.DefaultMaxConns), s.echo, 30*time.Second, s.log)
	}()
	loopDone := make(chan struct{})
	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	go func() {
		defer close(loopDone)
		if s.cfg.Master != "" {
			s.registrationLoop(loopCtx, adv)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Graceful stop: refuse new work, leave the master, finish in-flight.
	s.draining.Store(true)
	stopLoop()
	<-loopDone
	if s.cfg.Master != "" && s.ID() != "" {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.call(dctx, http.MethodDelete, "/slaves/"+s.ID(), nil, nil); err != nil {
			s.log.Warn("deregistering from the master failed", "err", err)
		} else {
			s.log.Info("deregistered from the master", "slave", s.ID())
		}
		cancel()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	s.streams.stop(sctx)
	cancel()
	stopServer()
	return <-errc
}

// registrationLoop registers with the master, then heartbeats; it
// registers again whenever the master has forgotten this slave.
func (s *Slave) registrationLoop(ctx context.Context, adv string) {
	interval := 2 * time.Second
	backoff := 200 * time.Millisecond
	registered := false
	for ctx.Err() == nil {
		if !registered {
			var resp api.RegisterResponse
			err := s.call(ctx, http.MethodPost, "/register-slave", api.RegisterRequest{
				WebhookURL: adv, ID: s.ID(), Capacity: s.cfg.Capacity, Version: api.Version,
			}, &resp)
			if err != nil {
				s.log.Warn("registration with the master failed; retrying", "err", err, "retry_in", backoff)
				sleep(ctx, backoff)
				backoff = min(backoff*2, 5*time.Second)
				continue
			}
			id, secret := resp.ID, resp.Secret
			s.id.Store(&id)
			s.secret.Store(&secret)
			if d, err := time.ParseDuration(resp.HeartbeatInterval); err == nil && d > 0 {
				interval = d
			}
			registered, backoff = true, 200*time.Millisecond
			s.log.Info("registered with the master", "slave", id, "status", resp.Status)
		}
		sleep(ctx, interval)
		if ctx.Err() != nil {
			return
		}
		err := s.call(ctx, http.MethodPost, "/slaves/"+s.ID()+"/heartbeat", api.Heartbeat{
			InFlight: int(s.inflight.Load()), Capacity: s.cfg.Capacity, TasksDone: s.done.Load(),
		}, nil)
		var se *statusError
		switch {
		case err == nil:
		case errors.As(err, &se) && se.code == http.StatusNotFound:
			s.log.Info("the master does not know this slave (restarted?); registering again")
			registered = false
		case errors.As(err, &se) && se.code == http.StatusForbidden:
			s.log.Warn("the master refused this slave's secret; registering again", "err", err)
			registered = false
		case errors.As(err, &se) && se.code == http.StatusGone:
			s.log.Warn("removed from the pool by an operator; not registering again until restarted")
			return
		default:
			s.log.Warn("heartbeat failed", "err", err)
		}
	}
}

type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return fmt.Sprintf("master answered %d: %s", e.code, e.body) }

// call sends a JSON request to the master.
func (s *Slave) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(s.cfg.Master, "/")+path, body)
	if err != nil {
		return fmt.Errorf("build %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if s.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
	}
	if secret := s.Secret(); secret != "" {
		req.Header.Set(api.HeaderSlaveSecret, secret)
	}
	res, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode >= 300 {
		return &statusError{code: res.StatusCode, body: string(bytes.TrimSpace(data))}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode reply to %s: %w", path, err)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// acquire takes one of Capacity evaluation slots, waiting for one if all are
// taken; it fails when the slave is draining or the client went away.
func (s *Slave) acquire(ctx context.Context) (func(), error) {
	if s.draining.Load() {
		return nil, httpserve.Errorf(http.StatusServiceUnavailable, "slave is shutting down")
	}
	release, err := s.slot(ctx)
	if err != nil {
		return nil, httpserve.Errorf(http.StatusServiceUnavailable, "gave up waiting for a free slot: %v", err)
	}
	return release, nil
}

// slot waits for one of the slave's evaluation slots, or until ctx ends,
// and returns its release.
func (s *Slave) slot(ctx context.Context) (func(), error) {
	s.inflight.Add(1)
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		s.inflight.Add(-1)
		return nil, ctx.Err()
	}
	return func() {
		<-s.sem
		s.inflight.Add(-1)
	}, nil
}

func (s *Slave) compute(c *echo.Context) error {
	var req api.ComputeRequest
	if err := httpserve.ReadJSON(c, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	if (req.Expression == "") == (req.Operation == nil) {
		e := httpserve.Errorf(http.StatusUnprocessableEntity, `exactly one of "expression" and "operation" is required`)
		e.Body.Field = "expression"
		return e
	}
	release, err := s.acquire(c.Request().Context())
	if err != nil {
		return err
	}
	var v float64
	if req.Operation != nil {
		v, err = calc.EvalOperation(req.Operation.Operation, req.Operation.Operands)
	} else {
		v, err = calc.Eval(req.Expression, calc.DefaultLimits)
	}
	release()
	s.done.Add(1)
	resp := api.ComputeResponse{ID: req.ID, Slave: s.ID()}
	if err != nil {
		s.evalErr.Inc()
		resp.Error = err.Error()
		return c.JSON(http.StatusUnprocessableEntity, resp)
	}
	s.evalOK.Inc()
	resp.Result = &v
	return c.JSON(http.StatusOK, resp)
}

func (s *Slave) computeBatch(c *echo.Context) error {
	var req api.ComputeBatchRequest
	if err := httpserve.ReadJSON(c, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	if len(req.Expressions) > s.cfg.MaxBatch {
		return httpserve.Errorf(http.StatusRequestEntityTooLarge, "batch holds %d expressions, limit is %d", len(req.Expressions), s.cfg.MaxBatch)
	}
	release, err := s.acquire(c.Request().Context())
	if err != nil {
		return err
	}
	out := api.ComputeBatchResponse{Results: make([]api.BatchItem, len(req.Expressions)), Slave: s.ID()}
	vals := make([]float64, len(req.Expressions))
	bad := 0
	for i, expr := range req.Expressions {
		v, err := calc.Eval(expr, calc.DefaultLimits)
		if err != nil {
			out.Results[i].Error = err.Error()
			bad++
			continue
		}
		vals[i] = v
		out.Results[i].Result = &vals[i]
	}
	release()
	s.done.Add(uint64(len(req.Expressions)))
	s.evalOK.Add(float64(len(req.Expressions) - bad))
	s.evalErr.Add(float64(bad))
	return c.JSON(http.StatusOK, out)
}

func (s *Slave) health(c *echo.Context) error {
	h := api.Health{
		ID: s.ID(), Role: "slave", Status: "ok", InFlight: int(s.inflight.Load()),
		Capacity: s.cfg.Capacity, TasksDone: s.done.Load(), Version: api.Version,
	}
	if s.draining.Load() {
		h.Status = "draining"
		return c.JSON(http.StatusServiceUnavailable, h)
	}
	return c.JSON(http.StatusOK, h)
}
