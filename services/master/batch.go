package master

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/calc"
	"github.com/calclab/calclab/services/dispatch"
	"github.com/calclab/calclab/services/httpserve"
	"github.com/calclab/calclab/services/runner"
)

// Batch chunk bounds: small enough to spread a batch over every slave,
// large enough that per-request costs vanish.
const (
	minChunk = 256
	maxChunk = 8192
)

// submitBatch evaluates many expressions in one request. Invalid ones get
// their error in place; valid ones are split into chunks dispatched like
// tasks (queued, balanced, retried elsewhere on failure). The reply is the
// record: batch results are not kept in the task store.
func (s *Server) submitBatch(c *echo.Context) error {
	start := time.Now()
	req, err := readBatch(c, s.cfg.MaxBatchBytes, s.cfg.MaxBatch)
	if err != nil {
		return err
	}
	n := len(req.Expressions)
	switch {
	case n == 0:
		e := httpserve.Errorf(http.StatusUnprocessableEntity, `"expressions" must hold at least one expression`)
		e.Body.Field = "expressions"
		return e
	case n > s.cfg.MaxBatch:
		e := httpserve.Errorf(http.StatusRequestEntityTooLarge, "batch holds %d expressions, limit is %d", n, s.cfg.MaxBatch)
		e.Body.Field = "expressions"
		return e
	}
	results := make([]api.BatchItem, n)
	valid := make([]int, 0, n)
	for i, expr := range req.Expressions {
		if err := calc.Check(expr, calc.DefaultLimits); err != nil {
			results[i].Error = "invalid expression: " + err.Error()
			continue
		}
		valid = append(valid, i)
	}
	if len(valid) > 0 {
		if err := s.admit(); err != nil {
			return admitError(err)
		}
		if err := s.runBatch(c.Request().Context(), req.Expressions, valid, results); err != nil {
			return err
		}
	}
	failed := 0
	for i := range results {
		if results[i].Error != "" {
			failed++
		}
	}
	s.batch.Add(float64(n))
	resp := api.BatchResponse{
		BatchID: "batch-" + httpserve.NewRequestID(), Count: n, Failed: failed, Results: results,
		DurationMS: float64(time.Since(start).Microseconds()) / 1000,
	}
	body, err := resp.AppendJSON(make([]byte, 0, 96+24*n))
	if err != nil {
		return c.JSON(http.StatusOK, resp) // encoding/json's error
	}
	return c.JSONBlob(http.StatusOK, append(body, '\n'))
}

func (s *Server) runBatch(ctx context.Context, exprs []string, valid []int, results []api.BatchItem) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TaskDeadline)
	defer cancel()
	reqID := httpserve.RequestID(ctx)
	slaves := max(1, len(s.pool.Targets()))
	size := min(max((len(valid)+4*slaves-1)/(4*slaves), minChunk), maxChunk)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		firstEr error
	)
	for lo := 0; lo < len(valid); lo += size {
		idx := valid[lo:min(lo+size, len(valid))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			chunk := api.ComputeBatchRequest{Expressions: make([]string, len(idx))}
			for k, i := range idx {
				chunk.Expressions[k] = exprs[i]
			}
			_, _, err := s.pool.Do(ctx, "", func(ctx context.Context, tg dispatch.Target, _ int) error {
				resp, err := s.slaves.ComputeBatch(ctx, tg, chunk, reqID)
				if err == nil {
					err = runner.CheckBatch(tg.ID, resp.Results, len(idx))
				}
				if err != nil {
					return err
				}
				for k, i := range idx {
					results[i] = resp.Results[k]
					if results[i].Error != "" {
						results[i].Error = "evaluation failed: " + results[i].Error
					}
				}
				return nil
			})
			if err != nil {
				mu.Lock()
				if firstEr == nil {
					firstEr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstEr != nil {
		return httpserve.Errorf(http.StatusServiceUnavailable, "batch could not be completed: %v", firstEr)
	}
	return nil
}
