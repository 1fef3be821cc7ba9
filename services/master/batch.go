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

// submitBatch evaluates many expressions in one request, split into chunks
// dispatched like tasks (queued, balanced, retried elsewhere on failure).
// Every expression gets its result or its error in place. The reply is the
// record: batch results are not kept in the task store.
//
// The master does not check every expression before sending it: the slave
// parses it anyway, and checking on both sides was a third of the master's
// CPU in a batch. Only an expression the slave reports as failed is checked
// here (classify), so an invalid one still gets the master's "invalid
// expression" error and the rest the slave's "evaluation failed" one. One
// longer than calc's limit is refused here and never sent. If the batch
// cannot run (no slave, a full queue), a batch whose every expression is
// invalid still gets its errors in place, as when each was checked first.
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
	send := make([]int, 0, n)
	for i, expr := range req.Expressions {
		if len(expr) > calc.DefaultLimits.MaxLen {
			classify(&results[i], expr, "")
			continue
		}
		send = append(send, i)
	}
	if len(send) > 0 {
		err := s.admit()
		if err != nil {
			err = admitError(err)
		} else {
			err = s.runBatch(c.Request().Context(), req.Expressions, send, results)
		}
		if err != nil && !allInvalid(req.Expressions, send, results) {
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

func (s *Server) runBatch(ctx context.Context, exprs []string, send []int, results []api.BatchItem) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TaskDeadline)
	defer cancel()
	reqID := httpserve.RequestID(ctx)
	slaves := max(1, len(s.pool.Targets()))
	size := min(max((len(send)+4*slaves-1)/(4*slaves), minChunk), maxChunk)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		firstEr error
	)
	for lo := 0; lo < len(send); lo += size {
		idx := send[lo:min(lo+size, len(send))]
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
						classify(&results[i], exprs[i], results[i].Error)
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

// classify sets the error of an expression that failed on a slave with
// message msg: the master's own "invalid expression" error when calc.Check
// refuses it, "evaluation failed" with the slave's message otherwise (calc
// guarantees that an expression Check accepts can only fail evaluating).
func classify(it *api.BatchItem, expr, msg string) {
	if err := calc.Check(expr, calc.DefaultLimits); err != nil {
		*it = invalidItem(err)
		return
	}
	*it = api.BatchItem{Error: "evaluation failed: " + msg}
}

func invalidItem(err error) api.BatchItem {
	return api.BatchItem{Error: "invalid expression: " + err.Error()}
}

// allInvalid reports whether every expression of a batch that could not
// run is invalid, giving each its error in place as it goes (when one is
// valid the batch fails, and the results are not sent).
func allInvalid(exprs []string, idx []int, results []api.BatchItem) bool {
	for _, i := range idx {
		err := calc.Check(exprs[i], calc.DefaultLimits)
		if err == nil {
			return false
		}
		results[i] = invalidItem(err)
	}
	return true
}
