package master

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/calc"
	"github.com/calclab/calclab/services/dispatch"
	"github.com/calclab/calclab/services/httpserve"
)

var taskIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// job is what a task runner sends to a slave.
type job struct {
	req   api.ComputeRequest
	key   string
	reqID string
}

// evalError is a slave's verdict on an expression: final, not retried.
type evalError struct{ msg string }

func (e evalError) Error() string { return e.msg }

// calcError turns a calc error into a 413 or 422 reply.
func calcError(err error, field string) error {
	code := http.StatusUnprocessableEntity
	switch {
	case errors.Is(err, calc.ErrTooLong):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, calc.ErrInternal):
		return httpserve.Errorf(http.StatusInternalServerError, "internal error checking the expression")
	}
	e := httpserve.Errorf(code, "invalid expression: %v", err)
	e.Body.Field = field
	return e
}

// parsePayload validates the payload of a submission and returns the
// compute request and a display form of it.
func parsePayload(raw json.RawMessage) (api.ComputeRequest, string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		e := httpserve.Errorf(http.StatusUnprocessableEntity, `"payload" is required: an expression string or {"operation": ..., "operands": [...]}`)
		e.Body.Field = "payload"
		return api.ComputeRequest{}, "", e
	}
	switch raw[0] {
	case '"':
		var expr string
		if err := json.Unmarshal(raw, &expr); err != nil {
			return api.ComputeRequest{}, "", httpserve.Errorf(http.StatusBadRequest, "payload: %v", err)
		}
		if err := calc.Check(expr, calc.DefaultLimits); err != nil {
			return api.ComputeRequest{}, "", calcError(err, "payload")
		}
		return api.ComputeRequest{Expression: expr}, expr, nil
	case '{':
		var op api.Operation
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&op); err != nil {
			e := httpserve.Errorf(http.StatusUnprocessableEntity, "payload: %v", err)
			e.Body.Field = "payload"
			return api.ComputeRequest{}, "", e
		}
		if _, err := calc.EvalOperation(op.Operation, op.Operands); err != nil && !isRuntimeError(err) {
			e := httpserve.Errorf(http.StatusUnprocessableEntity, "invalid operation: %v", err)
			e.Body.Field = "payload.operation"
			return api.ComputeRequest{}, "", e
		}
		parts := make([]string, len(op.Operands))
		for i, v := range op.Operands {
			parts[i] = strconv.FormatFloat(v, 'g', -1, 64)
		}
		return api.ComputeRequest{Operation: &op}, op.Operation + "(" + strings.Join(parts, ", ") + ")", nil
	default:
		e := httpserve.Errorf(http.StatusUnprocessableEntity, `"payload" must be an expression string or an {"operation", "operands"} object`)
		e.Body.Field = "payload"
		return api.ComputeRequest{}, "", e
	}
}

// isRuntimeError says whether a calc error depends on evaluation (division
// by zero, overflow), which is the slave's to report, not a malformed task.
func isRuntimeError(err error) bool {
	var ce *calc.Error
	return errors.As(err, &ce) && (ce.Kind == calc.ErrDivByZero || ce.Kind == calc.ErrNonFinite)
}

var taskSeq atomic.Uint32

// newTaskID returns a time-ordered id (task-<unix nanos><sequence>, hex),
// so the store appends instead of inserting all over its B+tree.
func newTaskID() string {
	var b [30]byte
	n := copy(b[:], "task-")
	n += len(strconv.AppendUint(b[n:n], uint64(time.Now().UnixNano()), 16))
	s := taskSeq.Add(1) & 0xffff
	const hexd = "0123456789abcdef"
	b[n], b[n+1], b[n+2], b[n+3] = hexd[s>>12], hexd[s>>8&15], hexd[s>>4&15], hexd[s&15]
	return string(b[:n+4])
}

func (s *Server) submitTask(c *echo.Context) error {
	var req api.SubmitRequest
	if err := httpserve.ReadJSON(c, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	async, err := boolQuery(c, "async")
	if err != nil {
		return err
	}
	creq, display, err := parsePayload(req.Payload)
	if err != nil {
		return err
	}
	id := req.TaskID
	if id == "" {
		id = newTaskID()
	} else if !taskIDPattern.MatchString(id) {
		e := httpserve.Errorf(http.StatusUnprocessableEntity, "task_id %q must be 1-128 letters, digits, '.', '_', ':' or '-'", id)
		e.Body.Field = "task_id"
		return e
	}
	if existing, ok := s.store.Get(id); ok {
		if existing.Expression != display {
			e := httpserve.Errorf(http.StatusConflict, "task_id %q was already submitted with a different payload (%q)", id, existing.Expression)
			e.Body.Field = "task_id"
			return e
		}
		return s.reply(c, id, async)
	}
	if err := s.admit(); err != nil {
		return admitError(err)
	}
	now := time.Now().UTC()
	t := api.Task{ID: id, Expression: display, Status: api.StatusQueued, CreatedAt: now}
	if _, created := s.store.Create(t); created {
		creq.ID = id
		j := job{req: creq, key: hashKey(c), reqID: httpserve.RequestID(c.Request().Context())}
		s.start(t, j)
	}
	return s.reply(c, id, async)
}

// reply answers a submission: at once (async) or with the final task.
func (s *Server) reply(c *echo.Context, id string, async bool) error {
	if async {
		t, _ := s.store.Get(id)
		if t.Done() {
			return c.JSON(http.StatusOK, t)
		}
		c.Response().Header().Set("Location", "/tasks/"+id)
		return c.JSON(http.StatusAccepted, t)
	}
	t, err := s.store.Wait(c.Request().Context(), id)
	if err != nil {
		return httpserve.Errorf(http.StatusNotFound, "task %q not found", id)
	}
	code := taskStatusCode(t)
	if code == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", "1")
	}
	return c.JSON(code, t)
}

// taskStatusCode is the HTTP status of a synchronous reply carrying t.
func taskStatusCode(t api.Task) int {
	switch t.Status {
	case api.StatusCompleted:
		return http.StatusOK
	case api.StatusFailed:
		if strings.HasPrefix(t.Error, "evaluation failed") {
			return http.StatusUnprocessableEntity
		}
		return http.StatusServiceUnavailable
	default: // the client went away or the wait ended: still running
		return http.StatusAccepted
	}
}

func hashKey(c *echo.Context) string {
	if k := c.Request().Header.Get(api.HeaderHashKey); k != "" {
		return k
	}
	return c.RealIP()
}

func boolQuery(c *echo.Context, name string) (bool, error) {
	v := c.QueryParam(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, httpserve.Errorf(http.StatusBadRequest, "query parameter %q must be true or false, got %q", name, v)
	}
	return b, nil
}

// start runs a stored task in the background until it is final.
func (s *Server) start(t api.Task, j job) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(t, j)
	}()
}

// run dispatches one task until it reaches a final status, which it records
// exactly once. A master shutdown leaves the task unfinished in the store:
// it runs again at the next start.
func (s *Server) run(t api.Task, j job) {
	ctx, cancel := context.WithTimeout(s.bgCtx, s.cfg.TaskDeadline)
	defer cancel()
	ctx = httpserve.WithRequestID(ctx, j.reqID)
	var (
		result float64
		target dispatch.Target
		err    error
	)
	// Group tasks only when they would wait anyway (jobs queued for a
	// slave, or tasks already waiting to be grouped): an idle cluster
	// answers each task with its own call, at the lowest latency.
	if s.coal != nil && j.req.Expression != "" && (s.pool.QueueDepth() > 0 || s.coal.depth() > 0) {
		deadline, _ := ctx.Deadline()
		o := s.coal.submit(&pending{id: t.ID, expr: j.req.Expression, reqID: j.reqID, deadline: deadline})
		target.ID = o.slave
		switch {
		case o.err != nil:
			err = o.err
		case o.evalErr != "":
			err = evalError{o.evalErr}
		default:
			result = o.result
		}
	} else {
		target, _, err = s.pool.Do(ctx, j.key, func(ctx context.Context, tg dispatch.Target, try int) error {
			_, _ = s.store.Update(t.ID, func(t *api.Task) {
				t.Status, t.Slave, t.Attempts = api.StatusAssigned, tg.ID, t.Attempts+1
			})
			resp, err := s.compute(ctx, tg, j)
			if err != nil {
				_, _ = s.store.Update(t.ID, func(t *api.Task) { t.Status = api.StatusQueued })
				return err
			}
			if resp.Error != "" || resp.Result == nil {
				return dispatch.Permanent(evalError{resp.Error})
			}
			result = *resp.Result
			return nil
		})
	}
	if s.bgCtx.Err() != nil && err != nil {
		s.log.Info("master stopping: task left for the next start", "task", t.ID)
		return
	}
	finished := time.Now().UTC()
	final, _ := s.store.Update(t.ID, func(t *api.Task) {
		t.FinishedAt = &finished
		t.DurationMS = float64(finished.Sub(t.CreatedAt).Microseconds()) / 1000
		t.Slave = target.ID
		var ee evalError
		switch {
		case err == nil:
			t.Status, t.Result, t.Error = api.StatusCompleted, &result, ""
		case errors.As(err, &ee):
			t.Status, t.Error = api.StatusFailed, "evaluation failed: "+ee.msg
		case errors.Is(err, context.DeadlineExceeded):
			t.Status, t.Error = api.StatusFailed, fmt.Sprintf("deadline of %s exceeded: %v", s.cfg.TaskDeadline, err)
		default:
			t.Status, t.Error = api.StatusFailed, err.Error()
		}
	})
	s.tasks.WithLabelValues(final.Status).Inc()
	lvl := slog.LevelDebug
	if final.Status == api.StatusFailed && !strings.HasPrefix(final.Error, "evaluation failed") {
		lvl = slog.LevelWarn
	}
	s.log.Log(ctx, lvl, "task finished", "task", t.ID, "status", final.Status, "slave", final.Slave, "attempts", final.Attempts, "error", final.Error)
}

// compute sends one task to one slave. A transport error or a 5xx reply is
// an error (the task runs elsewhere); a 200 carries a result or a final
// evaluation error.
func (s *Server) compute(ctx context.Context, tg dispatch.Target, j job) (api.ComputeResponse, error) {
	body, err := json.Marshal(j.req)
	if err != nil {
		return api.ComputeResponse{}, dispatch.Permanent(fmt.Errorf("encode task: %w", err))
	}
	var resp api.ComputeResponse
	err = s.post(ctx, tg.URL+"/compute", body, j.reqID, &resp)
	return resp, err
}

// post sends a JSON request to a slave and decodes a 200 or 422 reply.
func (s *Server) post(ctx context.Context, url string, body []byte, reqID string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TaskTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return dispatch.Permanent(fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	if reqID != "" {
		req.Header.Set(api.HeaderRequestID, reqID)
	}
	res, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("call %s: %w", url, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read reply of %s: %w", url, err)
	}
	switch res.StatusCode {
	case http.StatusOK, http.StatusUnprocessableEntity:
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode reply of %s: %w", url, err)
		}
		return nil
	default:
		return fmt.Errorf("%s answered %d: %s", url, res.StatusCode, bytes.TrimSpace(data[:min(len(data), 200)]))
	}
}

// resume runs again every task a previous master left unfinished.
func (s *Server) resume() {
	for _, t := range s.store.Unfinished() {
		var creq api.ComputeRequest
		if op, operands, ok := parseDisplayOperation(t.Expression); ok {
			creq.Operation = &api.Operation{Operation: op, Operands: operands}
		} else {
			creq.Expression = t.Expression
		}
		creq.ID = t.ID
		s.store.Update(t.ID, func(t *api.Task) { t.Status = api.StatusQueued })
		s.log.Info("resuming task left unfinished by the previous run", "task", t.ID)
		s.start(t, job{req: creq, key: t.ID})
	}
}

// parseDisplayOperation reverses the display form "addition(5, 3)".
func parseDisplayOperation(s string) (string, []float64, bool) {
	i := strings.IndexByte(s, '(')
	if i <= 0 || !strings.HasSuffix(s, ")") {
		return "", nil, false
	}
	name := s[:i]
	for _, r := range name {
		if r < 'a' || r > 'z' {
			return "", nil, false
		}
	}
	var vals []float64
	for _, f := range strings.Split(s[i+1:len(s)-1], ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return "", nil, false
		}
		vals = append(vals, v)
	}
	return name, vals, true
}

var taskStatuses = map[string]bool{api.StatusQueued: true, api.StatusAssigned: true, api.StatusCompleted: true, api.StatusFailed: true}

func (s *Server) listTasks(c *echo.Context) error {
	status := c.QueryParam("status")
	if status != "" && !taskStatuses[status] {
		e := httpserve.Errorf(http.StatusBadRequest, "status must be one of queued, assigned, completed, failed; got %q", status)
		e.Body.Field = "status"
		return e
	}
	limit := 50
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			e := httpserve.Errorf(http.StatusBadRequest, "limit must be an integer from 1 to 1000; got %q", v)
			e.Body.Field = "limit"
			return e
		}
		limit = n
	}
	list, err := s.store.List(status, limit, c.QueryParam("cursor"))
	if err != nil {
		e := httpserve.Errorf(http.StatusBadRequest, "%v", err)
		e.Body.Field = "cursor"
		return e
	}
	return c.JSON(http.StatusOK, list)
}

func (s *Server) getTask(c *echo.Context) error {
	id := c.Param("id")
	wait := time.Duration(0)
	if v := c.QueryParam("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Minute {
			e := httpserve.Errorf(http.StatusBadRequest, "wait must be a duration from 0s to 60s such as 5s; got %q", v)
			e.Body.Field = "wait"
			return e
		}
		wait = d
	}
	t, ok := s.store.Get(id)
	if !ok {
		return httpserve.Errorf(http.StatusNotFound, "task %q not found", id)
	}
	if wait > 0 && !t.Done() {
		ctx, cancel := context.WithTimeout(c.Request().Context(), wait)
		defer cancel()
		t, _ = s.store.Wait(ctx, id)
	}
	return c.JSON(http.StatusOK, t)
}
