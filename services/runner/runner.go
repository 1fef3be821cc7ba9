// Package runner owns the life of a calculator task on the master: admit,
// store, durable, queue, attempt (again and again), record once.
//
//   - Admit: a task is refused (the caller answers 503) while the task store
//     cannot write, while no slave is healthy, or while the queue is full.
//   - Store: the task and its original request (expression or operation,
//     hash key, request id) go to the store, which waits while its writer
//     is behind (backpressure).
//   - Durable: Acknowledge returns once the store's group commit holding the
//     task is on disk; an async 202 is sent only then. The attempts start
//     at once, without waiting for that commit: evaluation is pure, so
//     running a task whose commit then fails costs nothing, and a task that
//     finishes within one commit window is written once.
//   - Queue and attempts: the dispatcher picks a slave (waiting in its FIFO
//     queue when every slave is busy) and runs the task again elsewhere
//     when a slave fails, until the task deadline. Single expressions that
//     would wait are grouped into one batch call per slave.
//   - Record once: the final status, with a typed reason when it failed, is
//     written by the task's own runner goroutine and nowhere else.
//
// The runner depends on three small interfaces (Store, Dispatcher, Slaves),
// not on the HTTP server, so every step is tested without sockets.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/dispatch"
	"github.com/calclab/calclab/services/httpserve"
	"github.com/calclab/calclab/services/taskstore"
)

// Store is what the runner needs of the task store (taskstore.Store).
type Store interface {
	Get(id string) (api.Task, bool)
	Create(ctx context.Context, t api.Task, req taskstore.Request) (api.Task, bool, error)
	Update(id string, fn func(*api.Task)) (api.Task, error)
	Durable(ctx context.Context, id string) error
	Abandon(id string)
	Unfinished() []taskstore.Record
	Err() error
}

// Dispatcher is what the runner needs of the slave pool (dispatch.Pool).
type Dispatcher interface {
	Admit() error
	QueueDepth() int
	Do(ctx context.Context, key string, fn dispatch.Attempt) (dispatch.Target, int, error)
}

// Slaves sends work to one slave. An error is the slave's fault (transport,
// 5xx, a body that is not a well-formed answer): the job runs elsewhere. An
// evaluation error is an answer, not an error.
type Slaves interface {
	Compute(ctx context.Context, tg dispatch.Target, req api.ComputeRequest, reqID string) (api.ComputeResponse, error)
	ComputeBatch(ctx context.Context, tg dispatch.Target, req api.ComputeBatchRequest, reqID string) (api.ComputeBatchResponse, error)
}

// ErrStopped is returned by Submit once Stop was called.
var ErrStopped = errors.New("the master is stopping")

// Config tunes a Runner.
type Config struct {
	// Deadline bounds a task from the start of its run to its final status
	// (30s). Tasks started within one step of Deadline/1000 (1-10 ms)
	// share one deadline, at the end of their step.
	Deadline time.Duration
	// MaxQueue bounds the tasks waiting for a slave, grouped or not (10000).
	MaxQueue int
	// Group sends single expressions that would wait to a slave in one
	// batch call (not with the consistent-hash policy: grouping would move
	// tasks off the slave their key picks).
	Group bool
	// Senders is the number of concurrent group calls (default 8).
	Senders int
	// Finished, when set, is called once for every task that reaches a
	// final status (metrics, logs).
	// Its context carries the task's request id (for logs).
	Finished func(context.Context, api.Task)
	Logger   *slog.Logger
}

// Runner runs calculator tasks.
type Runner struct {
	cfg    Config
	store  Store
	pool   Dispatcher
	slaves Slaves
	group  *grouper // nil: every task is its own call
	due    *deadlines

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a runner; call Start before submitting.
func New(cfg Config, store Store, pool Dispatcher, slaves Slaves) *Runner {
	if cfg.Deadline <= 0 {
		cfg.Deadline = 30 * time.Second
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 10000
	}
	if cfg.Senders <= 0 {
		cfg.Senders = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Finished == nil {
		cfg.Finished = func(context.Context, api.Task) {}
	}
	r := &Runner{cfg: cfg, store: store, pool: pool, slaves: slaves}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.due = newDeadlines(r.ctx, cfg.Deadline)
	if cfg.Group {
		r.group = newGrouper(r, cfg.Senders)
	}
	return r
}

// Start starts the group senders and runs again every task a previous
// master left unfinished.
func (r *Runner) Start() {
	if r.group != nil {
		r.group.start(r.ctx)
	}
	r.resume()
}

// Stop ends every attempt and waits for the task goroutines. Unfinished
// tasks stay unfinished in the store: they run again at the next start.
func (r *Runner) Stop() {
	r.cancel()
	r.wg.Wait()
}

// QueueDepth counts the tasks waiting for a slave and waiting to be grouped.
func (r *Runner) QueueDepth() int {
	n := r.pool.QueueDepth()
	if r.group != nil {
		n += r.group.depth()
	}
	return n
}

// AdmitJob says whether a job that is not stored (a batch, a render) may
// start: a healthy slave and room in the queue.
func (r *Runner) AdmitJob() error {
	if err := r.pool.Admit(); err != nil {
		return err
	}
	if r.group != nil && r.QueueDepth() >= r.cfg.MaxQueue {
		return dispatch.ErrQueueFull
	}
	return nil
}

// Admit says whether a new task may be accepted: AdmitJob, and a task store
// that can write (the error then wraps taskstore.ErrUnavailable).
func (r *Runner) Admit() error {
	if err := r.store.Err(); err != nil {
		return err
	}
	return r.AdmitJob()
}

// Submission is a validated task.
type Submission struct {
	ID      string
	Display string // the expression, or the display form of an operation
	Request taskstore.Request
	// NewID says the master made the id now: no stored task can hold it,
	// so Submit and Run do not look for one before admission (the store
	// still refuses a duplicate).
	NewID bool
}

// Submit admits and stores a task and starts running it. It returns the
// stored task and whether it was created now; an existing task with the
// same id is returned as it is (created false, no admission, no new run).
func (r *Runner) Submit(ctx context.Context, sub Submission) (api.Task, bool, error) {
	t, created, err := r.admitAndStore(ctx, sub)
	if err != nil || !created {
		return t, created, err
	}
	r.start(t, sub.Request)
	return t, true, nil
}

func (r *Runner) admitAndStore(ctx context.Context, sub Submission) (api.Task, bool, error) {
	if !sub.NewID {
		if t, ok := r.store.Get(sub.ID); ok {
			return t, false, nil
		}
	}
	if r.ctx.Err() != nil {
		return api.Task{}, false, ErrStopped
	}
	if err := r.Admit(); err != nil {
		return api.Task{}, false, err
	}
	t := api.Task{ID: sub.ID, Expression: sub.Display, Status: api.StatusQueued, CreatedAt: time.Now().UTC()}
	stored, created, err := r.store.Create(ctx, t, sub.Request)
	if err != nil || !created {
		return stored, false, err
	}
	return stored, true, nil
}

// Run is Submit for a caller that waits for the final status: a task
// created now runs on the caller's goroutine (no hand-off to a task
// goroutine and back), and Run returns its final state, or its state when
// the master stopped meanwhile (left for the next start). An existing task
// is returned as it is, with created false, as Submit does.
func (r *Runner) Run(ctx context.Context, sub Submission) (api.Task, bool, error) {
	t, created, err := r.admitAndStore(ctx, sub)
	if err != nil || !created {
		return t, created, err
	}
	r.wg.Add(1)
	defer r.wg.Done()
	if final, ok := r.run(t, sub.Request); ok {
		return final, true, nil
	}
	t, _ = r.store.Get(t.ID)
	return t, true, nil
}

// Acknowledge waits until the task's creation is on disk: only then may the
// caller acknowledge it (202). When the commit holding it failed, the task
// is abandoned (it was never acknowledged) and the error wraps
// taskstore.ErrUnavailable.
func (r *Runner) Acknowledge(ctx context.Context, id string) error {
	err := r.store.Durable(ctx, id)
	if errors.Is(err, taskstore.ErrUnavailable) {
		r.store.Abandon(id)
	}
	return err
}

// resume runs again every task a previous master left unfinished, from its
// stored request.
func (r *Runner) resume() {
	for _, rec := range r.store.Unfinished() {
		if rec.Request.Empty() {
			final := r.finish(context.Background(), rec.Task.ID, "", 0, errInvalid)
			r.cfg.Logger.Warn("task left unfinished without its request; failed", "task", rec.Task.ID, "error", final.Error)
			continue
		}
		t, err := r.store.Update(rec.Task.ID, func(t *api.Task) { t.Status = api.StatusQueued })
		if err != nil {
			continue
		}
		r.cfg.Logger.Info("resuming task left unfinished by the previous run", "task", t.ID,
			"hash_key", rec.Request.HashKey, "request_id", rec.Request.RequestID)
		r.start(t, rec.Request)
	}
}

var errInvalid = errors.New("the task was stored without its request (by an older master); submit it again")

func (r *Runner) start(t api.Task, req taskstore.Request) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.run(t, req)
	}()
}

// evalError is a slave's verdict on an expression: final, not retried.
type evalError struct{ msg string }

func (e evalError) Error() string { return "evaluation failed: " + e.msg }

// Malformed slave answers (the slave's fault: the job runs elsewhere).
var (
	errNoAnswer     = errors.New("the slave answered neither a result nor an error")
	errNotOneAnswer = errors.New("not exactly one of a result and an error")
)

// run tries a task until it reaches a final status, which it records
// exactly once, and returns it (ok false: the task was abandoned meanwhile,
// or a stopping runner left it unfinished).
func (r *Runner) run(t api.Task, req taskstore.Request) (final api.Task, ok bool) {
	ctx := httpserve.WithRequestID(r.due.context(), req.RequestID)
	var (
		result float64
		slave  string
		err    error
	)
	// Group tasks only when they would wait anyway (jobs queued for a
	// slave, or tasks already waiting to be grouped): an idle cluster
	// answers each task with its own call, at the lowest latency.
	if r.group != nil && req.Expression != "" && (r.pool.QueueDepth() > 0 || r.group.depth() > 0) {
		deadline, _ := ctx.Deadline()
		o := r.group.submit(&pending{id: t.ID, expr: req.Expression, reqID: req.RequestID, deadline: deadline})
		result, slave, err = o.result, o.slave, o.err
	} else {
		id := t.ID // the closure captures the id, not the whole task
		creq := api.ComputeRequest{ID: id, Expression: req.Expression, Operation: req.Operation}
		var tg dispatch.Target
		tg, _, err = r.pool.Do(ctx, req.HashKey, func(ctx context.Context, tg dispatch.Target, _ int) error {
			r.assigned(id, tg.ID)
			resp, err := r.slaves.Compute(ctx, tg, creq, req.RequestID)
			switch {
			case err != nil:
			case resp.Error != "":
				return dispatch.Permanent(evalError{resp.Error})
			case resp.Result == nil:
				err = fmt.Errorf("slave %s: %w", tg.ID, errNoAnswer)
			default:
				result = *resp.Result
				return nil
			}
			r.requeued(id)
			return err
		})
		slave = tg.ID
	}
	if r.ctx.Err() != nil && err != nil {
		r.cfg.Logger.Info("master stopping: task left for the next start", "task", t.ID)
		return api.Task{}, false
	}
	final = r.finish(ctx, t.ID, slave, result, err)
	return final, final.ID != ""
}

// finish records the final status of a task: completed when err is nil,
// failed with its reason otherwise.
func (r *Runner) finish(ctx context.Context, id, slave string, result float64, err error) api.Task {
	// The finish time and the result the task points to, in one
	// allocation.
	v := &struct {
		at     time.Time
		result float64
	}{time.Now().UTC(), result}
	reason, msg := Classify(err, r.cfg.Deadline)
	final, uerr := r.store.Update(id, func(t *api.Task) {
		t.FinishedAt = &v.at
		t.DurationMS = float64(v.at.Sub(t.CreatedAt).Microseconds()) / 1000
		if slave != "" {
			t.Slave = slave
		}
		if err == nil {
			t.Status, t.Result, t.Error, t.Reason = api.StatusCompleted, &v.result, "", ""
			return
		}
		t.Status, t.Result, t.Error, t.Reason = api.StatusFailed, nil, msg, reason
	})
	if uerr != nil {
		return api.Task{} // abandoned: it was never acknowledged
	}
	r.cfg.Finished(ctx, final)
	return final
}

// Classify returns the failure reason and message of a task's final error.
func Classify(err error, deadline time.Duration) (reason, msg string) {
	if err == nil {
		return "", "" // before ee: its address escapes, so it costs an allocation
	}
	var ee evalError
	switch {
	case errors.As(err, &ee):
		return api.ReasonEvaluation, ee.Error()
	case errors.Is(err, errInvalid):
		return api.ReasonInvalid, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return api.ReasonDeadline, fmt.Sprintf("deadline of %s exceeded: %v", deadline, err)
	default:
		return api.ReasonUnavailable, err.Error()
	}
}

func (r *Runner) assigned(id, slave string) {
	_, _ = r.store.Update(id, func(t *api.Task) {
		t.Status, t.Slave, t.Attempts = api.StatusAssigned, slave, t.Attempts+1
	})
}

func (r *Runner) requeued(id string) {
	_, _ = r.store.Update(id, func(t *api.Task) { t.Status = api.StatusQueued })
}
