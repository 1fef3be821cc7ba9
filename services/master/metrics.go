package master

import (
	"context"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/dispatch"
	"github.com/calclab/calclab/services/slaveclient"
)

// Job kinds, the kind label of the job metrics.
const (
	kindTask = "task"
	kindTile = "tile"
)

// jobBuckets span a cached expression (sub-millisecond) to a deep tile
// that waits for its render's other tiles (a minute or two).
var jobBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// poolMetrics counts what happens to the slaves: it is the pool's
// dispatch.Events.
type poolMetrics struct {
	failures  *prometheus.CounterVec // slave, source, reason
	ejections *prometheus.CounterVec // slave, reason
	retries   *prometheus.CounterVec // kind
	// duration is the time from a job's acceptance to its final status.
	duration *prometheus.HistogramVec // kind, status
}

func newPoolMetrics() *poolMetrics {
	m := &poolMetrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "calclab_slave_failures_total",
			Help: "Failed health checks (source=check) and jobs (source=job) of each slave, by reason: transport, timeout, status (an unexpected HTTP status), unhealthy (its /health does not say ok), malformed (not a well-formed answer), redirect, other. GET /slaves shows the last one in words.",
		}, []string{"slave", "source", "reason"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "calclab_slave_ejections_total",
			Help: "Times each slave was taken out of rotation, by reason: check (failed health checks in a row) or job (failed jobs in a row).",
		}, []string{"slave", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "calclab_dispatch_retries_total",
			Help: "Tries of a job after its first one (on another slave after a failure, or the same one when no other is free), by kind (task, tile).",
		}, []string{"kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "calclab_job_duration_seconds",
			Help:    "Time from a job's acceptance to its final status, by kind (task: a calculator task; tile: a Mandelbrot tile, from its render's acceptance) and status (completed, failed).",
			Buckets: jobBuckets,
		}, []string{"kind", "status"}),
	}
	// Every kind's series exist from the start, at 0.
	for _, k := range []string{kindTask, kindTile} {
		m.retries.WithLabelValues(k)
		for _, st := range []string{api.StatusCompleted, api.StatusFailed} {
			m.duration.WithLabelValues(k, st)
		}
	}
	return m
}

func (m *poolMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.failures, m.ejections, m.retries, m.duration}
}

// Failed implements dispatch.Events.
func (m *poolMetrics) Failed(slave, source string, err error) {
	m.failures.WithLabelValues(slave, source, failureReason(err)).Inc()
}

// Ejected implements dispatch.Events.
func (m *poolMetrics) Ejected(slave, source string) {
	m.ejections.WithLabelValues(slave, source).Inc()
}

// Retried implements dispatch.Events.
func (m *poolMetrics) Retried(c dispatch.Class) {
	m.retries.WithLabelValues(c.String()).Inc()
}

// Removed implements dispatch.Events: a slave that leaves takes its series
// with it.
func (m *poolMetrics) Removed(slave string) {
	m.failures.DeletePartialMatch(prometheus.Labels{"slave": slave})
	m.ejections.DeletePartialMatch(prometheus.Labels{"slave": slave})
}

// failureReason is the reason label of a slave's failure: a few fixed
// values, never the error text.
func failureReason(err error) string {
	var e *slaveclient.Error
	switch {
	case errors.As(err, &e):
		// /health answered as a calclab slave (200, or 503 while it
		// drains) with a status that is not ok; other codes are "status".
		if e.Op == "health" && e.Kind == slaveclient.KindStatus && (e.Status == http.StatusOK || e.Status == http.StatusServiceUnavailable) {
			return "unhealthy"
		}
		return string(e.Kind)
	case errors.Is(err, context.DeadlineExceeded):
		return string(slaveclient.KindTimeout)
	}
	return "other"
}

// observe records a job's time from acceptance to its final status.
func (m *poolMetrics) observe(kind, status string, seconds float64) {
	m.duration.WithLabelValues(kind, status).Observe(max(seconds, 0))
}
