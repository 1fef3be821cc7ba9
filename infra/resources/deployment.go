package resources

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"time"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/provision/deploy"
	"github.com/calclab/calclab/provision/sshkeys"
	"github.com/calclab/calclab/services/api"
)

// DeploymentArgs are the inputs of the services on one node: the binary
// (by hash) and the service settings of lab.yaml. The node, its role and
// the provider replace the deployment; everything else (the binary, the
// policy, the token, the ports, where the master is) updates it in place.
type DeploymentArgs struct {
	Lab      string `json:"lab" pulumi:"lab" tfsdk:"lab"`
	Provider string `json:"provider" pulumi:"provider" tfsdk:"provider"`
	StateDir string `json:"stateDir" pulumi:"stateDir" tfsdk:"state_dir"`
	// BinDir holds bin/master, bin/slave and bin/linux-amd64/.
	BinDir string `json:"binDir" pulumi:"binDir" tfsdk:"bin_dir"`
	// Node is the node's name (from the node resource, so the deployment
	// depends on it); Role its role, IP its lab address.
	Node      string `json:"node" pulumi:"node" tfsdk:"node"`
	Role      string `json:"role" pulumi:"role" tfsdk:"role"`
	IP        string `json:"ip" pulumi:"ip" tfsdk:"ip"`
	CIDR      string `json:"cidr" pulumi:"cidr" tfsdk:"cidr"`
	SSHUser   string `json:"sshUser" pulumi:"sshUser" tfsdk:"ssh_user"`
	LocalHost string `json:"localHost" pulumi:"localHost" tfsdk:"local_host"`
	LocalPort int    `json:"localPort" pulumi:"localPort" tfsdk:"local_port"`
	// Network is the switch's name (the hyperv provider names its VMs'
	// switch with it).
	Network string `json:"network,omitempty" pulumi:"network,optional" tfsdk:"network"`

	MasterPort int    `json:"masterPort" pulumi:"masterPort" tfsdk:"master_port"`
	SlavePort  int    `json:"slavePort" pulumi:"slavePort" tfsdk:"slave_port"`
	Policy     string `json:"policy" pulumi:"policy" tfsdk:"policy"`
	Token      string `json:"token,omitempty" pulumi:"token,optional" provider:"secret" tfsdk:"token"`
	// MasterNode, MasterIP and MasterLocalPort say where a slave finds the
	// master (empty for the master itself).
	MasterNode      string `json:"masterNode,omitempty" pulumi:"masterNode,optional" tfsdk:"master_node"`
	MasterIP        string `json:"masterIp,omitempty" pulumi:"masterIp,optional" tfsdk:"master_ip"`
	MasterLocalPort int    `json:"masterLocalPort,omitempty" pulumi:"masterLocalPort,optional" tfsdk:"master_local_port"`
	// BinaryHash is BinaryHash(provider, binDir, role): a new binary is an
	// in-place update.
	BinaryHash string `json:"binaryHash" pulumi:"binaryHash" tfsdk:"binary_hash"`
	// HyperV is lab.yaml's hyperv: block as JSON (HyperVJSON), for the
	// hyperv provider: which Windows host, user, folder and image; empty
	// for the other providers.
	HyperV string `json:"hyperv,omitempty" pulumi:"hyperv,optional" tfsdk:"hyperv"`
}

// DeploymentState is a deployed, answering service.
type DeploymentState struct {
	DeploymentArgs
	// URL is where this machine reaches the service.
	URL string `json:"url" pulumi:"url" tfsdk:"url"`
	// Unit is the systemd unit on a VM, or "process" for local nodes.
	Unit string `json:"unit" pulumi:"unit" tfsdk:"unit"`
}

// ID is the deployment's stable identifier.
func (a DeploymentArgs) ID() string { return a.Lab + "/" + a.Node + "/services" }

// inPlace are the deployment inputs an update changes without replacing.
var deploymentInPlace = []string{"binDir", "ip", "cidr", "sshUser", "localHost", "localPort", "masterPort", "slavePort", "policy", "token", "masterNode", "masterIp", "masterLocalPort", "binaryHash"}

// Check validates the inputs.
func (a DeploymentArgs) Check() error {
	if err := checkCommon(a.Lab, a.Provider, a.StateDir); err != nil {
		return fmt.Errorf("deployment %s: %w", a.Node, err)
	}
	if err := checkHyperV(a.Provider, a.HyperV); err != nil {
		return fmt.Errorf("deployment %s: %w", a.Node, err)
	}
	if a.Role == spec.RoleSlave && a.MasterNode == "" {
		return fmt.Errorf("deployment %s: masterNode: a slave needs its master", a.Node)
	}
	l := a.lab()
	if a.Role == spec.RoleMaster {
		// a stand-in slave, so the lab validates
		l.Nodes = append(l.Nodes, spec.Node{Name: "other-slave", Role: spec.RoleSlave, IP: otherHost(a.CIDR, a.IP), CPUs: 1, Memory: 1024, LocalPort: a.LocalPort + 1})
	}
	if err := l.Validate(); err != nil {
		return fmt.Errorf("deployment %s: %w", a.Node, err)
	}
	if a.BinaryHash == "" {
		return fmt.Errorf("deployment %s: binaryHash: empty", a.Node)
	}
	return nil
}

// lab is a lab spec holding this node (and its master, for a slave), with
// the lab's service settings, for the driver and the deploy plan.
func (a DeploymentArgs) lab() *spec.Lab {
	l := &spec.Lab{
		Name: a.Lab, Provider: a.Provider, SSHUser: a.SSHUser,
		Network: spec.Network{Name: a.Network, CIDR: a.CIDR},
		HyperV:  hyperVOf(a.HyperV),
		Services: spec.Services{
			MasterPort: a.MasterPort, SlavePort: a.SlavePort, Policy: a.Policy,
			Token: a.Token, LocalHost: a.LocalHost,
		},
	}
	me := spec.Node{Name: a.Node, Role: a.Role, IP: a.IP, CPUs: 1, Memory: 1024, LocalPort: a.LocalPort}
	if a.Role == spec.RoleSlave {
		l.Nodes = append(l.Nodes, spec.Node{Name: a.MasterNode, Role: spec.RoleMaster, IP: a.MasterIP, CPUs: 1, Memory: 1024, LocalPort: a.MasterLocalPort})
	}
	l.Nodes = append(l.Nodes, me)
	return l
}

func (a DeploymentArgs) driver() (driver.Driver, error) {
	return newDriver(a.Provider, a.StateDir, a.BinDir)
}

// Create deploys the services onto the node and waits until they answer.
func (a DeploymentArgs) Create(ctx context.Context, log Log) (DeploymentState, error) {
	return a.apply(ctx, log, false)
}

// Update applies new inputs in place: a local process is restarted with
// the new binary or settings; on a VM the deploy uploads what differs and
// restarts the unit only when something did.
func (s DeploymentState) Update(ctx context.Context, a DeploymentArgs, log Log) (DeploymentState, error) {
	if s.Diff(a).Replace() {
		return DeploymentState{}, fmt.Errorf("deployment %s: %s cannot change in place", a.Node, s.Diff(a))
	}
	return a.apply(ctx, log, true)
}

func (a DeploymentArgs) apply(ctx context.Context, log Log, restart bool) (DeploymentState, error) {
	if err := a.Check(); err != nil {
		return DeploymentState{}, err
	}
	hash, err := BinaryHash(a.Provider, a.BinDir, a.Role)
	if err != nil {
		return DeploymentState{}, fmt.Errorf("deployment %s: %w", a.Node, err)
	}
	if hash != a.BinaryHash {
		return DeploymentState{}, fmt.Errorf("deployment %s: %s changed since the plan (binaryHash %s, now %s): run up again", a.Node, BinaryPath(a.Provider, a.BinDir, a.Role), a.BinaryHash, hash)
	}
	d, err := a.driver()
	if err != nil {
		return DeploymentState{}, err
	}
	start := time.Now()
	unlock := lock(a.StateDir)
	s, err := a.deploy(ctx, d, log, restart)
	unlock()
	if err != nil {
		return DeploymentState{}, err
	}
	if err := a.waitReady(ctx, d, s.URL); err != nil {
		return DeploymentState{}, err
	}
	log.printf("%s ready at %s in %s", a.Node, s.URL, time.Since(start).Round(time.Millisecond))
	return s, nil
}

func (a DeploymentArgs) deploy(ctx context.Context, d driver.Driver, log Log, restart bool) (DeploymentState, error) {
	l := a.lab()
	s := DeploymentState{DeploymentArgs: a, Unit: "process"}
	if !remote(a.Provider) {
		if a.Role == spec.RoleSlave {
			// Up converges every node of l: the master must already run,
			// from its own deployment, or Up would start it here.
			if up, err := running(ctx, d, l, a.MasterNode); err != nil || !up {
				return s, fmt.Errorf("deployment %s: master %s is not running (deploy it first): %v", a.Node, a.MasterNode, err)
			}
		}
		if restart {
			st, ok := d.(nodeStopper)
			if !ok {
				return s, fmt.Errorf("deployment %s: the %s driver cannot restart one node: %w", a.Node, a.Provider, driver.ErrUnsupported)
			}
			if err := st.StopNode(ctx, l, a.Node); err != nil {
				return s, fmt.Errorf("deployment %s: %w", a.Node, err)
			}
			log.printf("%s stopped for the update", a.Node)
		}
		err := d.Up(ctx, l, func(st driver.Step) {
			if st.Node == a.Node && st.Done {
				log.printf("%s %s ok %s", st.Node, st.Step, st.Hint)
			}
		})
		if err != nil {
			return s, fmt.Errorf("deployment %s: %w", a.Node, err)
		}
		s.URL, err = nodeURL(ctx, d, l, a.Node)
		return s, err
	}
	if !d.Info().Remote {
		return s, fmt.Errorf("deployment %s: the %s driver does not reach its nodes over SSH", a.Node, a.Provider)
	}
	t, err := d.SSHTarget(l, a.Node)
	if err != nil {
		return s, fmt.Errorf("deployment %s: %w (is the node up?)", a.Node, err)
	}
	me, _ := l.Node(a.Node)
	plan, err := deploy.PlanFor(l, me, filepath.Dir(BinaryPath(a.Provider, a.BinDir, a.Role)))
	if err != nil {
		return s, fmt.Errorf("deployment %s: %w", a.Node, err)
	}
	changed, err := deploy.DeployNode(ctx, t, plan, func(string) {})
	if err != nil {
		return s, fmt.Errorf("deployment %s: %w", a.Node, err)
	}
	if changed {
		log.printf("%s: installed/updated, service restarted", a.Node)
	} else {
		log.printf("%s: unchanged", a.Node)
	}
	unit, _ := deploy.UnitFor(a.Role)
	s.Unit = unit.Name
	s.URL, err = nodeURL(ctx, d, l, a.Node)
	return s, err
}

func running(ctx context.Context, d driver.Driver, l *spec.Lab, name string) (bool, error) {
	nodes, err := d.Nodes(ctx, l)
	if err != nil {
		return false, err
	}
	for _, n := range nodes {
		if n.Name == name {
			return n.Running, nil
		}
	}
	return false, nil
}

func nodeURL(ctx context.Context, d driver.Driver, l *spec.Lab, name string) (string, error) {
	nodes, err := d.Nodes(ctx, l)
	if err != nil {
		return "", err
	}
	for _, n := range nodes {
		if n.Name == name {
			return n.URL, nil
		}
	}
	return "", fmt.Errorf("node %s: not known to the %s driver", name, d.Info().Name)
}

// waitReady waits until the master answers healthy, or the slave is listed
// at the master as registered and not down.
func (a DeploymentArgs) waitReady(ctx context.Context, d driver.Driver, url string) error {
	timeout := 60 * time.Second
	if remote(a.Provider) {
		timeout = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	l := a.lab()
	masterURL := url
	if a.Role == spec.RoleSlave {
		var err error
		if masterURL, err = nodeURL(ctx, d, l, a.MasterNode); err != nil {
			return err
		}
	}
	c := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		if a.Role == spec.RoleMaster {
			var h api.Health
			if last = getJSON(ctx, c, masterURL+"/health", &h); last == nil {
				if h.Status == "ok" {
					return nil
				}
				last = fmt.Errorf("health %q", h.Status)
			}
		} else {
			var slaves []api.SlaveInfo
			if last = getJSON(ctx, c, masterURL+"/slaves", &slaves); last == nil {
				last = fmt.Errorf("not registered at %s", masterURL)
				for _, sl := range slaves {
					if sl.ID == a.Node && sl.Status != api.SlaveDown && sl.Status != api.SlaveDraining {
						return nil
					}
				}
			}
		}
		if up, err := running(ctx, d, l, a.Node); err == nil && !up {
			return fmt.Errorf("deployment %s: the service is not running (it exited while starting?); see lab logs %s", a.Node, a.Node)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("deployment %s: not ready after %s: %v (lab logs %s)", a.Node, timeout, last, a.Node)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func getJSON(ctx context.Context, c *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return json.Unmarshal(data, out)
}

// Read refreshes the deployment: it is gone when its service no longer
// runs (a local process that exited, a VM that is down), so a refresh drops
// it and the next up deploys it again.
func (s DeploymentState) Read(ctx context.Context) (DeploymentState, bool, error) {
	d, err := s.driver()
	if err != nil {
		return s, false, err
	}
	defer lock(s.StateDir)()
	up, err := running(ctx, d, s.lab(), s.Node)
	if err != nil {
		return s, false, err
	}
	return s, up, nil
}

// Diff compares the state with new inputs.
func (s DeploymentState) Diff(a DeploymentArgs) Diff {
	return diffFields(s.DeploymentArgs, a, deploymentInPlace...)
}

// Delete stops the services: the local process, or the unit on a VM that
// still runs (a VM already gone has nothing left to stop).
func (s DeploymentState) Delete(ctx context.Context, log Log) error {
	d, err := s.driver()
	if err != nil {
		return err
	}
	defer lock(s.StateDir)()
	l := s.lab()
	if !remote(s.Provider) {
		st, ok := d.(nodeStopper)
		if !ok {
			return fmt.Errorf("deployment %s: the %s driver cannot stop one node: %w", s.Node, s.Provider, driver.ErrUnsupported)
		}
		if err := st.StopNode(ctx, l, s.Node); err != nil {
			return err
		}
		log.printf("%s stopped", s.Node)
		return nil
	}
	if up, err := running(ctx, d, l, s.Node); err != nil || !up {
		log.printf("%s: its VM is not running; nothing to stop", s.Node)
		return nil
	}
	unit, err := deploy.UnitFor(s.Role)
	if err != nil {
		return err
	}
	if b, err := output(ctx, d, l, s.Node, "sudo -n systemctl disable --now "+unit.Name); err != nil {
		return fmt.Errorf("deployment %s: stop %s: %w: %s", s.Node, unit.Name, err, b)
	}
	log.printf("%s: %s stopped", s.Node, unit.Name)
	return nil
}

// output runs one command on a node over SSH (the driver's target) and
// returns its combined output.
func output(ctx context.Context, d driver.Driver, l *spec.Lab, node, command string) ([]byte, error) {
	if !d.Info().Remote {
		return nil, fmt.Errorf("the %s driver cannot run a command on a node: %w", d.Info().Name, driver.ErrUnsupported)
	}
	t, err := d.SSHTarget(l, node)
	if err != nil {
		return nil, err
	}
	c, err := t.Dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return sshkeys.Run(ctx, c, command)
}
