// Package api holds the wire types shared by the master, the slaves, the lab
// command and the tests. Every JSON body that crosses a process boundary is
// declared here, so the two ends cannot drift apart.
package api

import (
	"encoding/json"
	"time"
)

// Version is the calclab version reported by /health on both services.
const Version = "0.1.0"

// Task statuses, as stored by the master and shown by GET /tasks.
const (
	StatusQueued    = "queued"
	StatusAssigned  = "assigned"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
)

// Failure reasons of a failed task (Task.Reason): a client tells what
// happened from this field, never from the error text.
const (
	// ReasonEvaluation: a slave evaluated the task and the expression has
	// no value (division by zero, result not finite). Final: submitting it
	// again gives the same answer. A synchronous reply is 422.
	ReasonEvaluation = "evaluation"
	// ReasonDeadline: the task did not finish within the task deadline
	// (every slave busy or failing for that long). A synchronous reply is 503.
	ReasonDeadline = "deadline"
	// ReasonUnavailable: no slave could run the task (none left, or every
	// one it was tried on failed). A synchronous reply is 503.
	ReasonUnavailable = "unavailable"
	// ReasonInvalid: a task found unfinished at start whose stored request
	// cannot be run again (written by a master older than the stored
	// request, or unreadable). Submit it again.
	ReasonInvalid = "invalid"
)

// Slave statuses, as shown by GET /slaves.
const (
	SlaveFree     = "free"
	SlaveBusy     = "busy"
	SlaveDown     = "down"
	SlaveDraining = "draining"
)

// HeaderRequestID carries the request id from the client through the master
// to the slave, so one task can be followed in every log.
const HeaderRequestID = "X-Request-Id"

// HeaderSlaveSecret carries a slave's secret (given at registration) on its
// heartbeats, its deregistration and its re-registration.
const HeaderSlaveSecret = "X-Slave-Secret"

// HeaderHashKey is the key the consistent-hash policy balances on; without it
// the client's IP address is used (nginx ip_hash).
const HeaderHashKey = "X-Hash-Key"

// Error is the body of every error response of both services.
type Error struct {
	Error  string `json:"error"`
	Field  string `json:"field,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Operation is the seed's structured task payload:
// {"operation": "addition", "operands": [5, 3]}.
type Operation struct {
	Operation string    `json:"operation"`
	Operands  []float64 `json:"operands"`
}

// SubmitRequest is the body of POST /submit-task. Payload is either a JSON
// string holding an expression or an Operation object.
type SubmitRequest struct {
	TaskID  string          `json:"task_id,omitempty"`
	Payload json.RawMessage `json:"payload"`
}

// Task is one calculator task as the master stores and reports it.
type Task struct {
	ID         string   `json:"task_id"`
	Expression string   `json:"expression"`
	Status     string   `json:"status"`
	Result     *float64 `json:"result,omitempty"`
	Error      string   `json:"error,omitempty"`
	// Reason classifies a failure (one of the Reason constants); set
	// exactly when Status is failed.
	Reason     string     `json:"reason,omitempty"`
	Slave      string     `json:"slave,omitempty"`
	Attempts   int        `json:"attempts"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// DurationMS is the time from acceptance to the final status.
	DurationMS float64 `json:"duration_ms,omitempty"`
}

// Done reports whether the task reached a final status.
func (t *Task) Done() bool { return t.Status == StatusCompleted || t.Status == StatusFailed }

// TaskList is the body of GET /tasks.
type TaskList struct {
	Tasks      []Task `json:"tasks"`
	Total      int    `json:"total"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// BatchRequest is the body of POST /submit-batch.
type BatchRequest struct {
	Expressions []string `json:"expressions"`
}

// BatchItem is one result of POST /submit-batch, in request order. Exactly
// one of Result and Error is set.
type BatchItem struct {
	Result *float64 `json:"result,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// BatchResponse is the body of a POST /submit-batch reply.
type BatchResponse struct {
	BatchID    string      `json:"batch_id"`
	Count      int         `json:"count"`
	Failed     int         `json:"failed"`
	Results    []BatchItem `json:"results"`
	DurationMS float64     `json:"duration_ms"`
}

// RegisterRequest is the body of POST /register-slave. Webhook is accepted
// as a synonym of WebhookURL (the seed used both).
type RegisterRequest struct {
	WebhookURL string `json:"webhook_url,omitempty"`
	Webhook    string `json:"webhook,omitempty"`
	ID         string `json:"id,omitempty"`
	Capacity   int    `json:"capacity,omitempty"`
	Version    string `json:"version,omitempty"`
}

// RegisterResponse is the master's reply to a registration.
type RegisterResponse struct {
	ID                string `json:"id"`
	SlaveID           string `json:"slave_id"`
	HeartbeatInterval string `json:"heartbeat_interval"`
	Status            string `json:"status"`
	// Secret identifies this slave from now on: it must be sent as the
	// X-Slave-Secret header of its heartbeats, its deregistration and any
	// re-registration that moves its id to another webhook.
	Secret string `json:"secret"`
}

// Heartbeat is the body of POST /slaves/{id}/heartbeat.
type Heartbeat struct {
	InFlight  int    `json:"in_flight"`
	Capacity  int    `json:"capacity"`
	TasksDone uint64 `json:"tasks_done"`
}

// SlaveInfo is one entry of GET /slaves.
type SlaveInfo struct {
	ID        string    `json:"id"`
	Webhook   string    `json:"webhook"`
	Status    string    `json:"status"`
	InFlight  int       `json:"in_flight"`
	Capacity  int       `json:"capacity"`
	TasksDone uint64    `json:"tasks_done"`
	Failures  int       `json:"failures"`
	LatencyMS float64   `json:"latency_ms"`
	LastSeen  time.Time `json:"last_seen"`
	Version   string    `json:"version,omitempty"`
	// LastFailure is why the slave's last failed health check or job
	// failed ("health check: ..." or "job: ..."), kept after it recovers;
	// LastFailureAt is when. Both absent while it never failed.
	LastFailure   string     `json:"last_failure,omitempty"`
	LastFailureAt *time.Time `json:"last_failure_at,omitempty"`
}

// ComputeRequest is the body of a slave's POST /compute: either Expression
// or Operation is set.
type ComputeRequest struct {
	ID         string     `json:"id,omitempty"`
	Expression string     `json:"expression,omitempty"`
	Operation  *Operation `json:"operation,omitempty"`
}

// ComputeResponse is a slave's answer for one task. An evaluation error (bad
// expression, division by zero) is a final answer, not a slave failure.
type ComputeResponse struct {
	ID     string   `json:"id,omitempty"`
	Result *float64 `json:"result,omitempty"`
	Error  string   `json:"error,omitempty"`
	Slave  string   `json:"slave,omitempty"`
}

// ComputeBatchRequest is the body of a slave's POST /compute/batch.
type ComputeBatchRequest struct {
	Expressions []string `json:"expressions"`
}

// ComputeBatchResponse answers a ComputeBatchRequest, in order.
type ComputeBatchResponse struct {
	Results []BatchItem `json:"results"`
	Slave   string      `json:"slave,omitempty"`
}

// Health statuses of GET /health.
const (
	HealthOK = "ok"
	// HealthDegraded: the master serves reads but refuses new tasks (503),
	// for the reason in Health.Detail (its task store cannot write).
	HealthDegraded = "degraded"
)

// Health is the body of GET /health on both services.
type Health struct {
	ID     string `json:"id,omitempty"`
	Role   string `json:"role"`
	Status string `json:"status"`
	// Detail says why Status is not ok.
	Detail    string `json:"detail,omitempty"`
	InFlight  int    `json:"in_flight"`
	Capacity  int    `json:"capacity,omitempty"`
	TasksDone uint64 `json:"tasks_done"`
	Version   string `json:"version"`
	Slaves    int    `json:"slaves"`
	Queue     int    `json:"queue_depth"`
}

// Server-Sent Event names of GET /mandelbrot/stream, in the order they come:
// one start, one tile per tile as it lands, then done or error.
const (
	EventStart = "start"
	EventTile  = "tile"
	EventDone  = "done"
	EventError = "error"
)

// StreamStart is the data of the "start" event: the frame and its tile grid.
type StreamStart struct {
	Width    int     `json:"width"`
	Height   int     `json:"height"`
	Tiles    int     `json:"tiles"`
	Tile     int     `json:"tile"`
	CX       float64 `json:"cx"`
	CY       float64 `json:"cy"`
	Scale    float64 `json:"scale"`
	MaxIter  int     `json:"max_iter"`
	Colormap string  `json:"colormap"`
}

// StreamTile is the data of one "tile" event.
type StreamTile struct {
	N        int     `json:"n"` // 1-based arrival order
	OX       int     `json:"ox"`
	OY       int     `json:"oy"`
	W        int     `json:"w"`
	H        int     `json:"h"`
	Slave    string  `json:"slave"`
	MS       float64 `json:"ms"`
	Attempts int     `json:"attempts"`
	PNG      string  `json:"png"` // base64 PNG of the tile
}

// RenderStats sums up one slave's share of a render.
type RenderStats struct {
	Tiles  int     `json:"tiles"`
	BusyMS float64 `json:"busy_ms"`
}

// StreamDone is the data of the "done" event.
type StreamDone struct {
	Tiles  int                     `json:"tiles"`
	MS     float64                 `json:"ms"`
	Slaves map[string]*RenderStats `json:"slaves"`
}

// StreamError is the data of the "error" event: the render stopped.
type StreamError struct {
	Error string `json:"error"`
}
