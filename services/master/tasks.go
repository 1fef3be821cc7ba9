package master

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/calc"
	"github.com/calclab/calclab/services/dispatch"
	"github.com/calclab/calclab/services/httpserve"
	"github.com/calclab/calclab/services/runner"
	"github.com/calclab/calclab/services/taskstore"
)

var taskIDPattern = api.IDPattern

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
// request to store (expression or operation) and a display form of it.
func (s *Server) parsePayload(raw json.RawMessage) (taskstore.Request, string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		e := httpserve.Errorf(http.StatusUnprocessableEntity, `"payload" is required: an expression string or {"operation": ..., "operands": [...]}`)
		e.Body.Field = "payload"
		return taskstore.Request{}, "", e
	}
	switch raw[0] {
	case '"':
		expr, ok := plainJSONString(raw)
		if !ok {
			var s string // not expr: its address escapes, a heap allocation for every task
			if err := json.Unmarshal(raw, &s); err != nil {
				return taskstore.Request{}, "", httpserve.Errorf(http.StatusBadRequest, "payload: %v", err)
			}
			expr = s
		}
		if err := calc.Check(expr, calc.DefaultLimits); err != nil {
			return taskstore.Request{}, "", calcError(err, "payload")
		}
		return taskstore.Request{Expression: expr}, expr, nil
	case '{':
		var op api.Operation
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&op); err != nil {
			e := httpserve.Errorf(http.StatusUnprocessableEntity, "payload: %v", err)
			e.Body.Field = "payload"
			return taskstore.Request{}, "", e
		}
		if len(op.Operands) > s.cfg.MaxOperands {
			e := httpserve.Errorf(http.StatusRequestEntityTooLarge, "operation has %d operands, limit is %d", len(op.Operands), s.cfg.MaxOperands)
			e.Body.Field = "payload.operands"
			return taskstore.Request{}, "", e
		}
		if _, err := calc.EvalOperation(op.Operation, op.Operands); err != nil && !isRuntimeError(err) {
			e := httpserve.Errorf(http.StatusUnprocessableEntity, "invalid operation: %v", err)
			e.Body.Field = "payload.operation"
			return taskstore.Request{}, "", e
		}
		parts := make([]string, len(op.Operands))
		for i, v := range op.Operands {
			parts[i] = strconv.FormatFloat(v, 'g', -1, 64)
		}
		return taskstore.Request{Operation: &op}, op.Operation + "(" + strings.Join(parts, ", ") + ")", nil
	default:
		e := httpserve.Errorf(http.StatusUnprocessableEntity, `"payload" must be an expression string or an {"operation", "operands"} object`)
		e.Body.Field = "payload"
		return taskstore.Request{}, "", e
	}
}

// plainJSONString returns the string a JSON string literal holds when it
// has no escapes, control characters or non-ASCII bytes (every expression
// calc accepts), without a decoder; ok is false for anything else, which
// encoding/json then decodes (or refuses) as before.
func plainJSONString(raw []byte) (string, bool) {
	inside, rest, ok := plainString(raw)
	if !ok || len(rest) != 0 {
		return "", false
	}
	return string(inside), true
}

// plainJSON says whether b, the inside of a JSON string, is its own value:
// printable ASCII without escapes.
func plainJSON(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x80 || c == '\\' {
			return false
		}
	}
	return true
}

// plainSubmitRequest decodes the common submission, an object with a
// plain string "payload" and optionally a plain string "task_id" (printable
// ASCII without escapes), without a decoder; ok is false for anything else
// (other keys, other values, duplicates, anything after the object), which
// encoding/json then decodes or refuses as before. The payload aliases raw.
func plainSubmitRequest(raw []byte) (req api.SubmitRequest, ok bool) {
	b := skipSpace(raw)
	if len(b) == 0 || b[0] != '{' {
		return req, false
	}
	for b = skipSpace(b[1:]); ; {
		key, rest, ok := plainString(b)
		if !ok {
			return req, false
		}
		rest = skipSpace(rest)
		if len(rest) == 0 || rest[0] != ':' {
			return req, false
		}
		val, after, ok := plainString(skipSpace(rest[1:]))
		switch {
		case !ok:
			return req, false
		case string(key) == "payload" && req.Payload == nil:
			valStart := len(raw) - len(after) - len(val) - 2
			req.Payload = raw[valStart : valStart+len(val)+2 : valStart+len(val)+2]
		case string(key) == "task_id" && req.TaskID == "":
			req.TaskID = string(val)
		default:
			return req, false
		}
		b = skipSpace(after)
		if len(b) > 0 && b[0] == ',' {
			b = skipSpace(b[1:])
			continue
		}
		if len(b) == 0 || b[0] != '}' || len(skipSpace(b[1:])) != 0 || req.Payload == nil {
			return req, false
		}
		return req, true
	}
}

// plainString reads a JSON string at the start of b whose inside is
// plainJSON, returning the inside and what follows.
func plainString(b []byte) (inside, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, nil, false
	}
	end := bytes.IndexByte(b[1:], '"')
	if end < 0 || !plainJSON(b[1:1+end]) {
		return nil, nil, false
	}
	return b[1 : 1+end], b[2+end:], true
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && jsonSpace(b[0]) {
		b = b[1:]
	}
	return b
}

// jsonSpace says whether c is JSON white space.
func jsonSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

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

// storeWait bounds how long a submission waits for the task store's
// writer (backpressure) and for its commit (async acknowledgement).
const storeWait = 10 * time.Second

func (s *Server) submitTask(c *echo.Context) error {
	body, err := httpserve.ReadBody(c, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	r, err := s.submit(c.Request().Context(), body, c.QueryParam("async"), hashKey(c))
	if err != nil {
		return err
	}
	r.headers(c.Response().Header().Set)
	return taskJSON(c, r.code, r.task)
}

// submitTaskFast is submitTask on the fast lane (httpserve.FastLane): the
// same checks, task path and reply bytes.
func (s *Server) submitTaskFast(ctx context.Context, req *httpserve.FastRequest, w *httpserve.FastResponse) {
	async := ""
	if req.Query != "" {
		q, _ := url.ParseQuery(req.Query) // as Echo's QueryParam: what parses
		async = q.Get("async")
	}
	key := req.Header(api.HeaderHashKey)
	if key == "" {
		key = req.RemoteIP()
	}
	r, err := s.submit(ctx, req.Body, async, key)
	if err != nil {
		w.Error(ctx, s.log, err)
		return
	}
	r.headers(w.Header)
	b, err := r.task.AppendJSON(w.Buffer())
	if err != nil {
		b, err = json.Marshal(r.task) // the same error, from encoding/json
		if err != nil {
			w.Error(ctx, s.log, err)
			return
		}
	}
	w.JSON(r.code, append(b, '\n'))
}

// submitted is the reply to a task submission.
type submitted struct {
	code     int
	task     api.Task
	location string // the Location header of a 202
	retry    bool   // Retry-After: 1 (a task failed for lack of slaves)
}

// headers sets the reply's headers beyond its body's with set.
func (r submitted) headers(set func(name, value string)) {
	if r.location != "" {
		set("Location", r.location)
	}
	if r.retry {
		set("Retry-After", "1")
	}
}

// submit runs POST /submit-task for either HTTP path: body is the request
// body, async the raw ?async value, key the hash key.
func (s *Server) submit(ctx context.Context, raw []byte, asyncParam, key string) (submitted, error) {
	body, ok := plainSubmitRequest(raw)
	if !ok {
		if err := httpserve.DecodeJSON(raw, &body); err != nil {
			return submitted{}, err
		}
	}
	async, err := parseBoolQuery("async", asyncParam)
	if err != nil {
		return submitted{}, err
	}
	req, display, err := s.parsePayload(body.Payload)
	if err != nil {
		return submitted{}, err
	}
	id := body.TaskID
	if id == "" {
		id = newTaskID()
	} else if !taskIDPattern.MatchString(id) {
		e := httpserve.Errorf(http.StatusUnprocessableEntity, "task_id %q must be 1-128 letters, digits, '.', '_', ':' or '-'", id)
		e.Body.Field = "task_id"
		return submitted{}, e
	}
	req.HashKey, req.RequestID = key, httpserve.RequestID(ctx)
	if n := req.Size(); n > s.cfg.MaxRequestBytes {
		e := httpserve.Errorf(http.StatusRequestEntityTooLarge, "the task to store (payload, %s header, request id) takes %d bytes, limit is %d", api.HeaderHashKey, n, s.cfg.MaxRequestBytes)
		e.Body.Field = "payload"
		return submitted{}, e
	}
	sub := runner.Submission{ID: id, Display: display, Request: req, NewID: body.TaskID == ""}
	var (
		t       api.Task
		created bool
	)
	if async {
		// Bounds the store's commit too (Acknowledge).
		wctx, cancel := context.WithTimeout(ctx, storeWait)
		defer cancel()
		ctx = wctx
		t, created, err = s.runner.Submit(ctx, sub)
	} else {
		// The task runs on this goroutine. The store bounds its own wait
		// for its writer (storeWait).
		t, created, err = s.runner.Run(ctx, sub)
	}
	if err != nil {
		return submitted{}, s.refuse(err)
	}
	if !created && t.Expression != display {
		e := httpserve.Errorf(http.StatusConflict, "task_id %q was already submitted with a different payload (%q)", id, t.Expression)
		e.Body.Field = "task_id"
		return submitted{}, e
	}
	if async {
		if err := s.runner.Acknowledge(ctx, id); err != nil {
			return submitted{}, s.refuse(err)
		}
	}
	if created && !async {
		return finalReply(t), nil
	}
	return s.reply(ctx, id, async)
}

// refuse maps a submission the runner could not accept to a 503.
func (s *Server) refuse(err error) error {
	switch {
	case errors.Is(err, taskstore.ErrUnavailable):
		s.rejected.WithLabelValues("store_unavailable").Inc()
		e := httpserve.Errorf(http.StatusServiceUnavailable, "the task was not accepted: %v", err)
		e.Body.Detail = "the master cannot write its task store (GET /health says why); it accepts tasks again by itself once it can"
		e.RetryAfter = 5
		return e
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		s.rejected.WithLabelValues("store_behind").Inc()
		e := httpserve.Errorf(http.StatusServiceUnavailable, "the task store did not commit the task within %s: %v", storeWait, err)
		e.Body.Detail = "the task may still be stored: GET /tasks/{id}, or submit again with the same task_id (idempotent)"
		e.RetryAfter = 1
		return e
	case errors.Is(err, runner.ErrStopped):
		s.rejected.WithLabelValues("stopping").Inc()
		e := httpserve.Errorf(http.StatusServiceUnavailable, "%v", err)
		e.RetryAfter = 5
		return e
	case errors.Is(err, dispatch.ErrNoSlaves):
		s.rejected.WithLabelValues("no_slaves").Inc()
	case errors.Is(err, dispatch.ErrQueueFull):
		s.rejected.WithLabelValues("queue_full").Inc()
	}
	return admitError(err)
}

// reply answers a submission: at once (async) or with the final task.
func (s *Server) reply(ctx context.Context, id string, async bool) (submitted, error) {
	if async {
		t, _ := s.store.Get(id)
		if t.Done() {
			return submitted{code: http.StatusOK, task: t}, nil
		}
		return submitted{code: http.StatusAccepted, task: t, location: "/tasks/" + id}, nil
	}
	t, err := s.store.Wait(ctx, id)
	if err != nil {
		return submitted{}, httpserve.Errorf(http.StatusNotFound, "task %q not found", id)
	}
	return finalReply(t), nil
}

// finalReply answers a synchronous submission with the task as it is.
func finalReply(t api.Task) submitted {
	code := taskStatusCode(t)
	return submitted{code: code, task: t, retry: code == http.StatusServiceUnavailable}
}

// taskStatusCode is the HTTP status of a synchronous reply carrying t.
func taskStatusCode(t api.Task) int {
	switch t.Status {
	case api.StatusCompleted:
		return http.StatusOK
	case api.StatusFailed:
		if t.Reason == api.ReasonEvaluation {
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

// parseBoolQuery parses the value v of the query parameter name: "" is
// false.
func parseBoolQuery(name, v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, httpserve.Errorf(http.StatusBadRequest, "query parameter %q must be true or false, got %q", name, v)
	}
	return b, nil
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
	return taskJSON(c, http.StatusOK, t)
}

var replyBufs = sync.Pool{New: func() any { return new([]byte) }}

// taskJSON answers with t as c.JSON would (the same bytes, newline
// included), without reflection: this is every task submission's reply.
func taskJSON(c *echo.Context, code int, t api.Task) error {
	bp := replyBufs.Get().(*[]byte)
	defer replyBufs.Put(bp)
	b, err := t.AppendJSON((*bp)[:0])
	if err != nil {
		return c.JSON(code, t) // the same error, from encoding/json
	}
	b = append(b, '\n')
	*bp = b
	return c.JSONBlob(code, b)
}
