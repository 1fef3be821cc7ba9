package master

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/dispatch"
)

// slaveCalls sends calculator work to slaves for the runner and the batch
// endpoint (runner.Slaves).
type slaveCalls struct{ s *Server }

// Compute sends one task to one slave. A transport error or a 5xx reply is
// an error (the task runs elsewhere); a 200 or 422 carries a result or a
// final evaluation error.
func (c slaveCalls) Compute(ctx context.Context, tg dispatch.Target, req api.ComputeRequest, reqID string) (api.ComputeResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return api.ComputeResponse{}, dispatch.Permanent(fmt.Errorf("encode task: %w", err))
	}
	var resp api.ComputeResponse
	err = c.s.post(ctx, tg.URL+"/compute", body, reqID, &resp)
	return resp, err
}

// ComputeBatch sends a group of expressions to one slave.
func (c slaveCalls) ComputeBatch(ctx context.Context, tg dispatch.Target, req api.ComputeBatchRequest, reqID string) (api.ComputeBatchResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return api.ComputeBatchResponse{}, dispatch.Permanent(fmt.Errorf("encode batch: %w", err))
	}
	var resp api.ComputeBatchResponse
	err = c.s.post(ctx, tg.URL+"/compute/batch", body, reqID, &resp)
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
