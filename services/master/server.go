package master

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/balancer"
	"github.com/calclab/calclab/services/dispatch"
	"github.com/calclab/calclab/services/httpserve"
	"github.com/calclab/calclab/services/runner"
	"github.com/calclab/calclab/services/slaveclient"
	"github.com/calclab/calclab/services/taskstore"
	"github.com/calclab/calclab/services/web"
)

// Server is a running master.
type Server struct {
	// workInFlight is the work (iterations) of the renders in flight.
	workInFlight atomic.Int64
	cfg          Config
	log          *slog.Logger
	store        *taskstore.Store
	pool         *dispatch.Pool
	echo         *echo.Echo
	reg          *prometheus.Registry
	tasks        *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	batch        prometheus.Counter
	renders      prometheus.Counter
	pm           *poolMetrics
	httpMetrics  *httpserve.Metrics

	runner *runner.Runner      // the task path: admit, store, dispatch, record
	slaves *slaveclient.Client // every call to a slave
	bgCtx  context.Context
	cancel context.CancelFunc
}

// New opens the task store and builds the HTTP API. Call Run or Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	pol, err := balancer.New(cfg.Policy)
	if err != nil {
		return nil, fmt.Errorf("--policy %q is not a balancing policy; use one of %s", cfg.Policy, strings.Join(balancer.Names(), ", "))
	}
	store, err := taskstore.Open(cfg.DataDir, taskstore.Options{
		FlushEvery: cfg.FlushEvery, MaxTasks: cfg.MaxTasks, MaxBytes: cfg.MaxStoreBytes, Logger: cfg.Logger, MaxWait: storeWait,
	})
	if err != nil {
		return nil, fmt.Errorf("%w (--data-dir %s)", err, cfg.DataDir)
	}
	pm := newPoolMetrics()
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger,
		store: store,
		pool: dispatch.NewPool(dispatch.Config{
			Policy: pol, MaxQueue: cfg.MaxQueue, FailThreshold: cfg.FailThreshold, Logger: cfg.Logger, Events: pm,
			TaskPipeline: taskPipeline(cfg.TaskStream),
		}),
		reg: prometheus.NewRegistry(),
		pm:  pm,
	}
	s.slaves = slaveclient.New(slaveclient.Config{
		DialControl: s.dialAllowed, TaskTimeout: cfg.TaskTimeout, TileTimeout: cfg.TileTimeout,
		HealthTimeout: max(cfg.HealthInterval, 500*time.Millisecond), NoStream: !cfg.TaskStream,
	})
	s.runner = runner.New(runner.Config{
		Deadline: cfg.TaskDeadline, MaxQueue: cfg.MaxQueue, Logger: cfg.Logger, Finished: s.taskFinished,
		// Grouping tasks would move them off the slave their hash key picks.
		Group: strings.ToLower(strings.TrimSpace(cfg.Policy)) != "consistent-hash",
	}, store, s.pool, s.slaves)
	s.bgCtx, s.cancel = context.WithCancel(context.Background())
	s.registerMetrics()
	s.routes()
	return s, nil
}

// streamPipeline is how many calculator jobs the master keeps in flight per
// unit of a slave's capacity when it sends them on the task stream: enough
// that a slave's next read finds a group waiting, few enough that the
// balancing policy still sees which slave is behind.
const streamPipeline = 16

func taskPipeline(stream bool) int {
	if stream {
		return streamPipeline
	}
	return 1
}

func (s *Server) registerMetrics() {
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.tasks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "calclab_tasks_total", Help: "Tasks that reached a final status, by status.",
	}, []string{"status"})
	s.batch = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "calclab_batch_expressions_total", Help: "Expressions evaluated through POST /submit-batch.",
	})
	s.renders = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "calclab_renders_total", Help: "Mandelbrot frames rendered (PNG or stream).",
	})
	s.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "calclab_tasks_rejected_total",
		Help: "Task submissions answered 503, by reason (store_unavailable, store_behind, no_slaves, queue_full, stopping).",
	}, []string{"reason"})
	storeFailures := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "calclab_taskstore_write_failures_total", Help: "Task store writes that failed (each is retried).",
	}, func() float64 { return float64(s.store.WriteFailures()) })
	storeUp := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "calclab_taskstore_writable", Help: "1 while the task store writes, 0 while its writes fail (new tasks get 503).",
	}, func() float64 {
		if s.store.Err() != nil {
			return 0
		}
		return 1
	})
	s.reg.MustRegister(s.tasks, s.rejected, s.batch, s.renders, storeFailures, storeUp, &poolCollector{s: s})
	s.reg.MustRegister(s.pm.collectors()...)
}

// Metrics is the master's Prometheus registry, as GET /metrics serves it.
func (s *Server) Metrics() prometheus.Gatherer { return s.reg }

// taskFinished counts and logs a task that reached its final status.
func (s *Server) taskFinished(ctx context.Context, t api.Task) {
	s.tasks.WithLabelValues(t.Status).Inc()
	if t.FinishedAt != nil {
		s.pm.observe(kindTask, t.Status, t.FinishedAt.Sub(t.CreatedAt).Seconds())
	}
	lvl := slog.LevelDebug
	if t.Status == api.StatusFailed && t.Reason != api.ReasonEvaluation {
		lvl = slog.LevelWarn
	}
	if !s.log.Enabled(ctx, lvl) {
		return // no arguments to box for a line nobody reads
	}
	s.log.Log(ctx, lvl, "task finished", "task", t.ID, "status", t.Status, "reason", t.Reason,
		"slave", t.Slave, "attempts", t.Attempts, "error", t.Error)
}

func (s *Server) routes() {
	s.httpMetrics = httpserve.NewMetrics(s.reg, "master")
	e := httpserve.New(s.log, s.httpMetrics)
	e.Use(httpserve.BodyDeadline(s.cfg.BodyTimeout))
	e.POST("/submit-task", s.submitTask)
	e.POST("/submit-batch", s.submitBatch)
	e.GET("/tasks", s.listTasks)
	e.GET("/tasks/:id", s.getTask)
	// Slave management takes JSON only (415 otherwise): a web page cannot
	// send it cross-site with a form or a text/plain POST.
	e.POST("/register-slave", s.registerSlave, httpserve.RequireJSON, s.auth)
	e.GET("/slaves", s.listSlaves)
	e.GET("/slaves/:id", s.getSlave)
	e.DELETE("/slaves/:id", s.drainSlave, httpserve.RequireJSON, s.auth)
	e.POST("/slaves/:id/heartbeat", s.heartbeat, httpserve.RequireJSON, s.auth)
	e.GET("/health", s.health)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})))
	e.GET("/openapi.json", serveOpenAPI)
	e.GET("/mandelbrot/render", s.render)
	e.GET("/mandelbrot/stream", s.stream)
	web.Register(e) // the browser UI at / and /ui/ (a middleware: no API routes)
	s.echo = e
}

// Handler is the master's HTTP API.
func (s *Server) Handler() http.Handler { return s.echo }

// Routes lists the registered method and path pairs (for the OpenAPI test).
func (s *Server) Routes() []echo.RouteInfo { return s.echo.Router().Routes() }

// Run listens on cfg.Listen and serves until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		s.Close()
		// The command's name prefixes this (no "master: master: ...").
		return fmt.Errorf("%w (is the port taken? choose another with --listen)", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then stops gracefully: the listener
// closes, in-flight requests finish, and every task runner stops and its
// state is flushed to disk (unfinished tasks run again at next start).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.log.Info("master listening", "addr", ln.Addr().String(), "policy", s.cfg.Policy, "data_dir", s.cfg.DataDir)
	s.runner.Start()
	go s.healthLoop(s.bgCtx)
	var lane *httpserve.FastLane
	if s.cfg.FastLane {
		lane = &httpserve.FastLane{
			Routes:  map[string]httpserve.FastHandler{"POST /submit-task": s.submitTaskFast},
			MaxBody: s.cfg.MaxBodyBytes, BodyTimeout: s.cfg.BodyTimeout, Metrics: s.httpMetrics, Logger: s.log,
		}
	}
	err := httpserve.ServeFast(ctx, httpserve.LimitListener(ln, s.cfg.MaxConns), s.echo, lane, 10*time.Second, s.log)
	s.Close()
	return err
}

// Close stops task runners and closes the store.
func (s *Server) Close() {
	s.cancel()
	s.runner.Stop()
	s.slaves.CloseStreams()
	if err := s.store.Close(); err != nil {
		s.log.Error("closing task store", "err", err)
	}
}

// auth requires the shared token, when one is configured.
func (s *Server) auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		if s.cfg.Token == "" {
			return next(c)
		}
		const prefix = "Bearer "
		h := c.Request().Header.Get("Authorization")
		if len(h) <= len(prefix) || h[:len(prefix)] != prefix ||
			subtle.ConstantTimeCompare([]byte(h[len(prefix):]), []byte(s.cfg.Token)) != 1 {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="calclab"`)
			return httpserve.Errorf(http.StatusUnauthorized, "missing or wrong bearer token")
		}
		return next(c)
	}
}

func (s *Server) health(c *echo.Context) error {
	healthy := 0
	for _, sl := range s.pool.List() {
		if sl.Status != api.SlaveDown && sl.Status != api.SlaveDraining {
			healthy++
		}
	}
	counts := s.store.Counts()
	h := api.Health{
		Role: "master", Status: api.HealthOK, Version: api.Version, Slaves: healthy,
		Queue: s.queueDepth(), InFlight: counts[api.StatusAssigned] + counts[api.StatusQueued],
		TasksDone: uint64(counts[api.StatusCompleted] + counts[api.StatusFailed]),
	}
	code := http.StatusOK
	if err := s.store.Err(); err != nil {
		// New tasks get 503 until the store writes again: say so to
		// load balancers and operators.
		h.Status, h.Detail, code = api.HealthDegraded, "new tasks are refused: "+err.Error(), http.StatusServiceUnavailable
	}
	return c.JSON(code, h)
}

// admit says whether a job that is not stored (a batch, a render) may
// start.
func (s *Server) admit() error { return s.runner.AdmitJob() }

// queueDepth counts the jobs waiting for a slave and the tasks waiting to
// be grouped.
func (s *Server) queueDepth() int { return s.runner.QueueDepth() }

// admitError maps the dispatcher's admission errors to 503 replies.
func admitError(err error) error {
	e := httpserve.Errorf(http.StatusServiceUnavailable, "%v", err)
	switch {
	case errors.Is(err, dispatch.ErrQueueFull):
		e.RetryAfter = 1
	case errors.Is(err, dispatch.ErrNoSlaves):
		e.Body.Detail = "start a slave or wait for one to register; GET /slaves shows the pool"
		e.RetryAfter = 5
	}
	return e
}
