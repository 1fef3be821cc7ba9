package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/provision/deploy"
)

// Deploy installs the services on every node of a Remote provider over SSH
// (binaries, env files, systemd units), in parallel, and reports per node
// whether anything changed. Nothing changed means nothing restarted.
func (l *Lab) Deploy(ctx context.Context) error {
	if !l.Driver.Info().Remote {
		return fmt.Errorf("deploy with the %s provider: %w (it runs bin/ directly)", l.Driver.Info().Name, driver.ErrUnsupported)
	}
	for _, role := range []string{"master", "slave"} {
		if _, err := os.Stat(filepath.Join(l.LinuxBinDir, role)); err != nil {
			return fmt.Errorf("deploy: no static linux/amd64 %s binary in %q: run make build (it cross-compiles them with CGO_ENABLED=0)", role, l.LinuxBinDir)
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, n := range l.Spec.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := func() error {
				t, err := l.Driver.SSHTarget(l.Spec, n.Name)
				if err != nil {
					return err
				}
				plan, err := deploy.PlanFor(l.Spec, n, l.LinuxBinDir)
				if err != nil {
					return err
				}
				changed, err := deploy.DeployNode(ctx, t, plan, func(string) {})
				if err != nil {
					return err
				}
				hint := "unchanged"
				if changed {
					hint = "installed/updated, service restarted"
				}
				mu.Lock()
				l.progress(driver.Step{Node: n.Name, Step: "deploy", Done: true, Elapsed: time.Since(start), Hint: hint})
				mu.Unlock()
				return nil
			}()
			if err != nil {
				mu.Lock()
				l.progress(driver.Step{Node: n.Name, Step: "deploy", Err: err, Elapsed: time.Since(start), Hint: filepath.Join("lab logs", n.Name)})
				errs = append(errs, fmt.Errorf("node %s: deploy: %w", n.Name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}
