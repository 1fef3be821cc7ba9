package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/dispatch"
	"github.com/calclab/calclab/services/httpserve"
)

func (s *Server) allowed(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.cfg.AllowCIDRs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// dialAllowed vets every address the master connects to, so a webhook
// whose name later resolves elsewhere still cannot be reached.
func (s *Server) dialAllowed(_, address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	if !s.allowed(ap.Addr()) {
		return fmt.Errorf("dial %s: address is outside the allowed networks", address)
	}
	return nil
}

// checkWebhook validates a slave's webhook URL and returns its normal form.
func (s *Server) checkWebhook(ctx context.Context, raw string) (string, error) {
	fail := func(format string, args ...any) (string, error) {
		e := httpserve.Errorf(http.StatusUnprocessableEntity, format, args...)
		e.Body.Field = "webhook_url"
		return "", e
	}
	if raw == "" {
		return fail(`"webhook_url" (or "webhook") is required: the slave's base URL, e.g. http://127.0.0.1:6001`)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fail("webhook_url %q is not a URL: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fail("webhook_url %q must use http or https", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Hostname() == "" || u.Port() == "" {
		return fail("webhook_url %q must be scheme://host:port with no credentials, query or fragment", raw)
	}
	host := u.Hostname()
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		addrs, err = net.DefaultResolver.LookupNetIP(rctx, "ip", host)
		if err != nil || len(addrs) == 0 {
			return fail("webhook_url host %q does not resolve: %v", host, err)
		}
	}
	for _, a := range addrs {
		if !s.allowed(a) {
			e := httpserve.Errorf(http.StatusForbidden, "webhook_url %q: address %s is outside the allowed networks %v", raw, a, s.cfg.AllowCIDRs)
			e.Body.Field = "webhook_url"
			return "", e
		}
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/"), nil
}

func (s *Server) registerSlave(c *echo.Context) error {
	var req api.RegisterRequest
	if err := httpserve.ReadJSON(c, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	raw := req.WebhookURL
	if raw == "" {
		raw = req.Webhook
	}
	ctx := c.Request().Context()
	hook, err := s.checkWebhook(ctx, raw)
	if err != nil {
		return err
	}
	if req.ID != "" && !taskIDPattern.MatchString(req.ID) {
		e := httpserve.Errorf(http.StatusUnprocessableEntity, "id %q must be 1-128 letters, digits, '.', '_', ':' or '-'", req.ID)
		e.Body.Field = "id"
		return e
	}
	if req.Capacity < 0 || req.Capacity > dispatch.MaxCapacity {
		e := httpserve.Errorf(http.StatusUnprocessableEntity, "capacity must be from 1 to %d (0 or absent: the default), got %d", dispatch.MaxCapacity, req.Capacity)
		e.Body.Field = "capacity"
		return e
	}
	// Only a calclab slave joins: its webhook must answer /health as one.
	_, err = s.slaves.Health(ctx, dispatch.Target{URL: hook})
	if err != nil {
		e := httpserve.Errorf(http.StatusUnprocessableEntity, "webhook_url %q does not answer GET /health as a healthy calclab slave: %v", hook, err)
		e.Body.Field = "webhook_url"
		return e
	}
	r, err := s.pool.Join(dispatch.Registration{
		URL: hook, ID: req.ID, Capacity: req.Capacity, Version: req.Version,
		Secret: c.Request().Header.Get(api.HeaderSlaveSecret),
	})
	if err != nil {
		e := httpserve.Errorf(http.StatusConflict, "%v; only that slave (with the secret it was given, header %s) can move it", err, api.HeaderSlaveSecret)
		e.Body.Field = "id"
		return e
	}
	status := "refreshed"
	if r.Created {
		status = "registered"
	}
	return c.JSON(http.StatusOK, api.RegisterResponse{
		ID: r.ID, SlaveID: r.ID, Status: status, HeartbeatInterval: s.cfg.HeartbeatInterval.String(), Secret: r.Secret,
	})
}

// verifySlave checks the slave secret a heartbeat or deregistration
// presents: 404 unknown, 410 removed, 403 wrong secret.
func (s *Server) verifySlave(c *echo.Context, id string) error {
	err := s.pool.Verify(id, c.Request().Header.Get(api.HeaderSlaveSecret))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dispatch.ErrUnknownSlave):
		return httpserve.Errorf(http.StatusNotFound, "slave %q not found: it is not registered (a slave registers again)", id)
	case errors.Is(err, dispatch.ErrRemoved):
		return httpserve.Errorf(http.StatusGone, "slave %q was removed by an operator", id)
	default:
		return httpserve.Errorf(http.StatusForbidden, "slave %q: %v (send the secret from its registration as %s)", id, err, api.HeaderSlaveSecret)
	}
}

func (s *Server) listSlaves(c *echo.Context) error {
	return c.JSON(http.StatusOK, s.pool.List())
}

func (s *Server) getSlave(c *echo.Context) error {
	sl, ok := s.pool.Get(c.Param("id"))
	if !ok {
		return httpserve.Errorf(http.StatusNotFound, "slave %q not found", c.Param("id"))
	}
	return c.JSON(http.StatusOK, sl)
}

func (s *Server) drainSlave(c *echo.Context) error {
	id := c.Param("id")
	if err := s.verifySlave(c, id); err != nil {
		return err
	}
	known, removed := s.pool.Drain(id)
	switch {
	case !known:
		return httpserve.Errorf(http.StatusNotFound, "slave %q not found", id)
	case removed:
		return c.JSON(http.StatusOK, map[string]string{"id": id, "status": "removed"})
	default:
		return c.JSON(http.StatusAccepted, map[string]string{"id": id, "status": api.SlaveDraining})
	}
}

func (s *Server) heartbeat(c *echo.Context) error {
	var hb api.Heartbeat
	if err := httpserve.ReadJSON(c, s.cfg.MaxBodyBytes, &hb); err != nil {
		return err
	}
	id := c.Param("id")
	if err := s.verifySlave(c, id); err != nil {
		return err
	}
	switch s.pool.Heartbeat(id, hb) {
	case dispatch.HeartbeatUnknown:
		return httpserve.Errorf(http.StatusNotFound, "slave %q is not registered; register again", id)
	case dispatch.HeartbeatRemoved:
		return httpserve.Errorf(http.StatusGone, "slave %q was removed by an operator", id)
	}
	return c.JSON(http.StatusOK, map[string]string{"id": id, "status": "ok"})
}

// healthLoop actively checks every slave's /health each HealthInterval.
func (s *Server) healthLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var wg sync.WaitGroup
		// One snapshot of the pool for both: which streams stay, which
		// slaves are checked. A slave that left the pool (drained,
		// forgotten) keeps no stream, and neither does one that is down:
		// its stream may be a dead connection (its VM was killed), and
		// when it comes back its first task goes on a new one.
		list := s.pool.List()
		s.slaves.RetainStreams(func(url string) bool {
			return slices.ContainsFunc(list, func(sl api.SlaveInfo) bool { return sl.Webhook == url && sl.Status != api.SlaveDown })
		})
		for _, sl := range list {
			tg := dispatch.Target{ID: sl.ID, URL: sl.Webhook}
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, err := s.checkSlave(ctx, tg)
				if ctx.Err() != nil {
					return
				}
				// A failure is logged by the pool: at warn when the slave
				// was healthy until now.
				s.pool.CheckResult(tg.ID, err, h)
			}()
		}
		wg.Wait()
	}
}

func (s *Server) checkSlave(ctx context.Context, tg dispatch.Target) (api.Health, error) {
	return s.slaves.Health(ctx, tg)
}

// poolCollector exports per-slave gauges from the registry at scrape time,
// so a slave's series disappear when it leaves.
type poolCollector struct{ s *Server }

var (
	descInFlight = prometheus.NewDesc("calclab_dispatch_in_flight",
		"Jobs the master has running on each slave, by kind (task, tile); a slave's own count is its calclab_slave_in_flight.",
		[]string{"slave", "kind"}, nil)
	descCapacity = prometheus.NewDesc("calclab_slave_capacity", "Jobs of each kind the slave may run at once (as it reported).", []string{"slave"}, nil)
	descUp       = prometheus.NewDesc("calclab_slave_up", "1 when the slave takes work, 0 when down or draining.", []string{"slave"}, nil)
	descDone     = prometheus.NewDesc("calclab_slave_jobs_done_total", "Jobs the slave finished.", []string{"slave"}, nil)
	descQueue    = prometheus.NewDesc("calclab_queue_depth", "Jobs waiting for a free slave.", nil, nil)
	descStored   = prometheus.NewDesc("calclab_tasks_stored", "Tasks in the store, by status.", []string{"status"}, nil)
)

func (pc *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descInFlight
	ch <- descCapacity
	ch <- descUp
	ch <- descDone
	ch <- descQueue
	ch <- descStored
}

func (pc *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, sl := range pc.s.pool.List() {
		up := 0.0
		if sl.Status != api.SlaveDown && sl.Status != api.SlaveDraining {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descCapacity, prometheus.GaugeValue, float64(sl.Capacity), sl.ID)
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, sl.ID)
		ch <- prometheus.MustNewConstMetric(descDone, prometheus.CounterValue, float64(sl.TasksDone), sl.ID)
	}
	pc.s.pool.InFlight(func(slave string, c dispatch.Class, n int) {
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(n), slave, c.String())
	})
	ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(pc.s.queueDepth()))
	for st, n := range pc.s.store.Counts() {
		ch <- prometheus.MustNewConstMetric(descStored, prometheus.GaugeValue, float64(n), st)
	}
}
