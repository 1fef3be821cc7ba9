// Package slaveclient is the master's one client of its slaves: compute,
// batch, tile and health calls, each checked for a well-formed answer, and
// one mapping from what can go wrong (transport, HTTP status, body) to whose
// fault it is:
//
//   - a job fault (the job itself is bad, another slave would say the same:
//     a 400/413/422 refusal) is wrapped dispatch.Permanent: not retried, not
//     counted against the slave;
//   - a suspect failure (the try's timeout, a 5xx), which a slow or poison
//     job causes as well as a bad slave, is wrapped dispatch.Suspect: tried
//     elsewhere, and judged by what happens there;
//   - everything else is the slave's fault (connection refused or reset, a
//     redirect, a 404, a body that is not a well-formed result such as
//     200 {}, a wrong count in a batch): the job runs elsewhere and the
//     failure counts against the slave.
//
// An evaluation error (division by zero) is not an error at all: it is the
// slave's answer, in ComputeResponse.Error.
package slaveclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/dispatch"
	"github.com/calclab/calclab/services/httpserve"
	"github.com/calclab/calclab/services/mandel"
)

// Kind says what went wrong with a call.
type Kind string

// Kinds of failure.
const (
	KindTransport Kind = "transport" // connect, reset, EOF: the slave's
	KindTimeout   Kind = "timeout"   // the try's own timeout: suspect
	KindRedirect  Kind = "redirect"  // 3xx: the slave's (never followed)
	KindStatus    Kind = "status"    // 5xx suspect, other unexpected codes the slave's
	KindRefused   Kind = "refused"   // 400/413/422 on a request the master built: the job's
	KindMalformed Kind = "malformed" // a body that is not a well-formed answer: the slave's
	KindEncode    Kind = "encode"    // the master could not build the request: the job's
)

// Fault is whose fault a failed call is.
type Fault string

// Faults.
const (
	FaultSlave   Fault = "slave"
	FaultSuspect Fault = "suspect"
	FaultJob     Fault = "job"
)

// Error is a failed call to a slave.
type Error struct {
	Op     string // compute, batch, tile, health
	Slave  string // id or URL
	Kind   Kind
	Status int // HTTP status, 0 when there was none
	Err    error
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("slave %s %s: %s (HTTP %d): %v", e.Slave, e.Op, e.Kind, e.Status, e.Err)
	}
	return fmt.Sprintf("slave %s %s: %s: %v", e.Slave, e.Op, e.Kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Fault is the one mapping from a failure to whose fault it is.
func (e *Error) Fault() Fault {
	switch e.Kind {
	case KindRefused, KindEncode:
		return FaultJob
	case KindTimeout:
		return FaultSuspect
	case KindStatus:
		if e.Status >= 500 && e.Status != http.StatusServiceUnavailable {
			return FaultSuspect
		}
	}
	return FaultSlave
}

// wrap returns e marked for the dispatcher according to its fault.
func wrap(e *Error) error {
	switch e.Fault() {
	case FaultJob:
		return dispatch.Permanent(e)
	case FaultSuspect:
		return dispatch.Suspect(e)
	}
	return e
}

// FaultOf reports the fault of an error returned by the client, and false
// for any other error (the caller's context ended, for one).
func FaultOf(err error) (Fault, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Fault(), true
	}
	return "", false
}

// Config tunes a Client.
type Config struct {
	// DialControl vets every address the client connects to (nil: any).
	DialControl func(network, address string) error
	// TaskTimeout bounds one compute or batch try (default 5s).
	TaskTimeout time.Duration
	// TileTimeout bounds one tile try (default 60s).
	TileTimeout time.Duration
	// HealthTimeout bounds one health check (default 1s).
	HealthTimeout time.Duration
	// NoStream sends every compute and batch call as its own HTTP request
	// instead of on the slave's task stream (package taskstream).
	NoStream bool
	// MaxStreamBacklog bounds the request bytes queued for a stream that
	// the slave does not read (default 32 MiB): past it the slave counts
	// as failed and the stream is closed.
	MaxStreamBacklog int
}

// Client calls slaves. It is safe for concurrent use.
type Client struct {
	cfg     Config
	http    *http.Client
	streams streams
}

// New returns a client. It never follows a redirect: a slave that answers
// 3xx has failed (a 307 must not carry a task to another address).
func New(cfg Config) *Client {
	if cfg.TaskTimeout <= 0 {
		cfg.TaskTimeout = 5 * time.Second
	}
	if cfg.TileTimeout <= 0 {
		cfg.TileTimeout = 60 * time.Second
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = time.Second
	}
	if cfg.MaxStreamBacklog <= 0 {
		cfg.MaxStreamBacklog = 32 << 20
	}
	hc := httpserve.Client(cfg.DialControl)
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{cfg: cfg, http: hc}
}

// Reply size bounds: a compute answer is tiny; a batch answer is bounded by
// its item count.
const (
	maxComputeReply = 64 << 10
	maxHealthReply  = 64 << 10
	maxItemReply    = 1 << 10
)

// reply is a slave's answer before it is checked.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request with its own timeout. ctx ending cancels the call on
// the slave (the slave's request context ends with the connection).
func (c *Client) do(ctx context.Context, op string, tg dispatch.Target, method, path string, body []byte, reqID string, timeout time.Duration, limit int64) (reply, error) {
	fail := func(k Kind, status int, err error) (reply, error) {
		return reply{}, wrap(&Error{Op: op, Slave: name(tg), Kind: k, Status: status, Err: err})
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(tctx, method, tg.URL+path, rd)
	if err != nil {
		return fail(KindEncode, 0, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if reqID != "" {
		req.Header.Set(api.HeaderRequestID, reqID)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return c.transportFailure(ctx, tctx, op, tg, 0, err, timeout)
	}
	defer res.Body.Close()
	data, err := readBody(res, limit)
	if err != nil {
		return c.transportFailure(ctx, tctx, op, tg, res.StatusCode, err, timeout)
	}
	if int64(len(data)) > limit {
		return fail(KindMalformed, res.StatusCode, fmt.Errorf("answer is over %d bytes", limit))
	}
	switch s := res.StatusCode; {
	case s >= 300 && s < 400:
		return fail(KindRedirect, s, fmt.Errorf("answered a redirect to %q (not followed)", res.Header.Get("Location")))
	case s == http.StatusBadRequest || s == http.StatusRequestEntityTooLarge:
		return fail(KindRefused, s, errors.New(snippet(data)))
	}
	return reply{status: res.StatusCode, header: res.Header, body: data}, nil
}

// readBody reads at most limit+1 bytes of a reply. A reply that declares
// its length (a tile does) is read into one buffer of that size, instead of
// a buffer that doubles and copies as it grows (a 4K frame's tiles are
// ~33 MB of raw pixels per frame).
func readBody(res *http.Response, limit int64) ([]byte, error) {
	body := io.LimitReader(res.Body, limit+1)
	if n := res.ContentLength; n > bytes.MinRead && n <= limit {
		buf := bytes.NewBuffer(make([]byte, 0, n+bytes.MinRead))
		_, err := buf.ReadFrom(body)
		return buf.Bytes(), err
	}
	return io.ReadAll(body)
}

// transportFailure classifies a failed exchange: the caller's context ended
// (returned as is: nobody's fault), the try's timeout, or the transport.
func (c *Client) transportFailure(ctx, tctx context.Context, op string, tg dispatch.Target, status int, err error, timeout time.Duration) (reply, error) {
	if ctx.Err() != nil {
		return reply{}, fmt.Errorf("slave %s %s: %w", name(tg), op, ctx.Err())
	}
	kind := KindTransport
	if tctx.Err() != nil {
		kind, err = KindTimeout, fmt.Errorf("no answer within %s: %w", timeout, err)
	}
	return reply{}, wrap(&Error{Op: op, Slave: name(tg), Kind: kind, Status: status, Err: err})
}

func name(tg dispatch.Target) string {
	if tg.ID != "" {
		return tg.ID
	}
	return tg.URL
}

func snippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

func (c *Client) unexpected(op string, tg dispatch.Target, r reply) error {
	return wrap(&Error{Op: op, Slave: name(tg), Kind: KindStatus, Status: r.status, Err: errors.New(snippet(r.body))})
}

func (c *Client) malformed(op string, tg dispatch.Target, r reply, format string, args ...any) error {
	return wrap(&Error{Op: op, Slave: name(tg), Kind: KindMalformed, Status: r.status, Err: fmt.Errorf(format, args...)})
}

// decodeStrict decodes a JSON object, refusing trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// Compute runs one task on one slave. It returns the slave's answer: a
// result, or an evaluation error in resp.Error (not an error). An error is
// a failure whose fault the dispatcher reads (see the package doc).
func (c *Client) Compute(ctx context.Context, tg dispatch.Target, req api.ComputeRequest, reqID string) (api.ComputeResponse, error) {
	const op = "compute"
	if !c.cfg.NoStream && req.Operation == nil && req.Expression != "" {
		items, err := c.computeStream(ctx, op, tg, []string{req.Expression}, reqID)
		if !errors.Is(err, errNoStream) {
			if err != nil {
				return api.ComputeResponse{}, err
			}
			return api.ComputeResponse{ID: req.ID, Result: items[0].Result, Error: items[0].Error, Slave: tg.ID}, nil
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return api.ComputeResponse{}, wrap(&Error{Op: op, Slave: name(tg), Kind: KindEncode, Err: err})
	}
	r, err := c.do(ctx, op, tg, http.MethodPost, "/compute", body, reqID, c.cfg.TaskTimeout, maxComputeReply)
	if err != nil {
		return api.ComputeResponse{}, err
	}
	var resp api.ComputeResponse
	switch r.status {
	case http.StatusOK:
		if err := decodeStrict(r.body, &resp); err != nil {
			return resp, c.malformed(op, tg, r, "answer is not JSON: %v", err)
		}
		if resp.Result == nil || resp.Error != "" {
			return api.ComputeResponse{}, c.malformed(op, tg, r, "a 200 answer must carry a result and no error: %s", snippet(r.body))
		}
	case http.StatusUnprocessableEntity:
		if err := decodeStrict(r.body, &resp); err != nil {
			return resp, c.malformed(op, tg, r, "answer is not JSON: %v", err)
		}
		if resp.Error == "" || resp.Result != nil {
			// A 422 without the slave's verdict: the request was refused.
			return api.ComputeResponse{}, wrap(&Error{Op: op, Slave: name(tg), Kind: KindRefused, Status: r.status, Err: errors.New(snippet(r.body))})
		}
	default:
		return api.ComputeResponse{}, c.unexpected(op, tg, r)
	}
	if req.ID != "" && resp.ID != "" && resp.ID != req.ID {
		return api.ComputeResponse{}, c.malformed(op, tg, r, "answer is for task %q, not %q", resp.ID, req.ID)
	}
	return resp, nil
}

// ComputeBatch runs a group of expressions on one slave. The answer has
// exactly one item per expression, each with exactly one of Result and
// Error (an evaluation error); anything else is the slave's fault.
func (c *Client) ComputeBatch(ctx context.Context, tg dispatch.Target, req api.ComputeBatchRequest, reqID string) (api.ComputeBatchResponse, error) {
	const op = "batch"
	if !c.cfg.NoStream && len(req.Expressions) > 0 {
		items, err := c.computeStream(ctx, op, tg, req.Expressions, reqID)
		if !errors.Is(err, errNoStream) {
			if err != nil {
				return api.ComputeBatchResponse{}, err
			}
			return api.ComputeBatchResponse{Results: items, Slave: tg.ID}, nil
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return api.ComputeBatchResponse{}, wrap(&Error{Op: op, Slave: name(tg), Kind: KindEncode, Err: err})
	}
	limit := int64(maxComputeReply + maxItemReply*len(req.Expressions))
	r, err := c.do(ctx, op, tg, http.MethodPost, "/compute/batch", body, reqID, c.cfg.TaskTimeout, limit)
	if err != nil {
		return api.ComputeBatchResponse{}, err
	}
	if r.status == http.StatusUnprocessableEntity {
		return api.ComputeBatchResponse{}, wrap(&Error{Op: op, Slave: name(tg), Kind: KindRefused, Status: r.status, Err: errors.New(snippet(r.body))})
	}
	if r.status != http.StatusOK {
		return api.ComputeBatchResponse{}, c.unexpected(op, tg, r)
	}
	var resp api.ComputeBatchResponse
	if err := decodeStrict(r.body, &resp); err != nil {
		return api.ComputeBatchResponse{}, c.malformed(op, tg, r, "answer is not JSON: %v", err)
	}
	if len(resp.Results) != len(req.Expressions) {
		return api.ComputeBatchResponse{}, c.malformed(op, tg, r, "%d results for %d expressions", len(resp.Results), len(req.Expressions))
	}
	for i, it := range resp.Results {
		if (it.Result == nil) == (it.Error == "") {
			return api.ComputeBatchResponse{}, c.malformed(op, tg, r, "result %d has %s", i, map[bool]string{true: "neither a result nor an error", false: "both a result and an error"}[it.Result == nil])
		}
	}
	return resp, nil
}

// Tile formats.
const (
	FormatRaw = "raw" // RGBA rows, 4*width*height bytes
	FormatPNG = "png"
	// FormatBand is a band of whole rows as mandel.AppendBand makes it:
	// the scanlines' Adler-32 (4 bytes), then raw deflate ending with a
	// sync flush (00 00 ff ff).
	FormatBand = "band"
)

var syncFlush = []byte{0, 0, 0xff, 0xff}

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// Tile renders one tile on one slave and returns its raw RGBA bytes or its
// PNG. A raw answer of the wrong size, or a PNG answer that is not a PNG,
// is the slave's fault.
func (c *Client) Tile(ctx context.Context, tg dispatch.Target, t mandel.Tile, format, reqID string) ([]byte, error) {
	const op = "tile"
	q := t.Query()
	q.Set("format", format)
	raw := int64(4 * t.Width * t.Height)
	r, err := c.do(ctx, op, tg, http.MethodGet, "/mandelbrot/tile?"+q.Encode(), nil, reqID, c.cfg.TileTimeout, raw+1<<20)
	if err != nil {
		return nil, err
	}
	if r.status != http.StatusOK {
		return nil, c.unexpected(op, tg, r)
	}
	switch format {
	case FormatRaw:
		if int64(len(r.body)) != raw {
			return nil, c.malformed(op, tg, r, "%d bytes for a %dx%d raw tile, want %d", len(r.body), t.Width, t.Height, raw)
		}
	case FormatPNG:
		if !bytes.HasPrefix(r.body, pngMagic) {
			return nil, c.malformed(op, tg, r, "tile answer is not a PNG")
		}
	case FormatBand:
		// What can be checked without inflating it: a band cut short
		// or not a band at all would corrupt the whole PNG.
		if len(r.body) < 4+len(syncFlush)+1 || !bytes.HasSuffix(r.body, syncFlush) {
			return nil, c.malformed(op, tg, r, "band answer of %d bytes is not an Adler-32 and deflate data ending with a sync flush", len(r.body))
		}
	}
	return r.body, nil
}

// Health asks a slave's /health. It returns an error unless the answer is
// 200 with a JSON body of a calclab slave (role "slave") whose status is
// "ok". tg.ID may be empty (a slave being registered).
func (c *Client) Health(ctx context.Context, tg dispatch.Target) (api.Health, error) {
	const op = "health"
	r, err := c.do(ctx, op, tg, http.MethodGet, "/health", nil, "", c.cfg.HealthTimeout, maxHealthReply)
	if err != nil {
		return api.Health{}, err
	}
	var h api.Health
	if r.status != http.StatusOK && r.status != http.StatusServiceUnavailable {
		return h, c.unexpected(op, tg, r)
	}
	if err := decodeStrict(r.body, &h); err != nil || !strings.EqualFold(h.Role, "slave") {
		return h, c.malformed(op, tg, r, "/health does not answer as a calclab slave: %s", snippet(r.body))
	}
	if r.status != http.StatusOK || h.Status != "ok" {
		return h, wrap(&Error{Op: op, Slave: name(tg), Kind: KindStatus, Status: r.status, Err: fmt.Errorf("slave reports status %q", h.Status)})
	}
	return h, nil
}
