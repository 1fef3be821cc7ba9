// Package resources is the lab as a few resources with create, read,
// update, delete and diff over the drivers and the SSH deploy: the network
// (switch), one node per lab.yaml entry, and the deployment of the services
// onto a node. It is the one model both IaC engines go through: the Pulumi
// provider (cmd/pulumi-resource-calclab) and the Terraform provider
// (cmd/terraform-provider-calclab) are thin adapters over these types.
//
// Inputs are lab.yaml's values, flat and primitive (strings and ints), so
// any engine's schema can carry them; outputs are what users need (node
// addresses, SSH ports, URLs). Every operation takes its inputs or its last
// state and nothing else: the driver is rebuilt from Provider, StateDir and
// BinDir each time, the way a plugin process is started per operation.
//
// What a node and a deployment are depends on the provider:
//
//	            node                                deployment
//	local       a loopback address + a directory    the master/slave process (restarted when
//	                                                its binary or settings change)
//	qemu        a VM booted until cloud-init is     binaries, env file and systemd unit over
//	            done (replaced when its image,      SSH, hash-based: an unchanged deploy
//	            CPUs, memory, IP... change)          touches nothing
//
// A deployment is ready when its service answers: the master healthy, a
// slave registered and not down at the master.
package resources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/infra/driver/hyperv"
	"github.com/calclab/calclab/infra/driver/local"
	"github.com/calclab/calclab/infra/driver/qemu"
	"github.com/calclab/calclab/infra/spec"
)

// Log receives one line of progress for the user (the engine shows it next
// to the resource). A nil Log drops the lines.
type Log func(msg string)

func (l Log) printf(format string, args ...any) {
	if l != nil {
		l(fmt.Sprintf(format, args...))
	}
}

// Change is one input that differs between the last state and new inputs.
type Change struct {
	// Field is the input's name as in the schema (camelCase: memoryMb).
	Field string
	// Replace is set when the change cannot be made in place: the
	// resource is deleted and created again.
	Replace bool
}

// Diff is what an update would do to a resource.
type Diff []Change

// HasChanges reports whether anything differs.
func (d Diff) HasChanges() bool { return len(d) > 0 }

// Replace reports whether any change forces a replacement.
func (d Diff) Replace() bool {
	for _, c := range d {
		if c.Replace {
			return true
		}
	}
	return false
}

// String lists the changes, replacing ones marked: "image (replace), cpus".
func (d Diff) String() string {
	parts := make([]string, len(d))
	for i, c := range d {
		parts[i] = c.Field
		if c.Replace {
			parts[i] += " (replace)"
		}
	}
	return strings.Join(parts, ", ")
}

// diffFields compares two structs of the same type field by field (their
// json names) and marks every change as a replacement unless the field is
// in inPlace.
func diffFields(old, cur any, inPlace ...string) Diff {
	ov, nv := reflect.ValueOf(old), reflect.ValueOf(cur)
	t := ov.Type()
	var d Diff
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		if reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			continue
		}
		replace := true
		for _, f := range inPlace {
			if f == name {
				replace = false
			}
		}
		d = append(d, Change{Field: name, Replace: replace})
	}
	return d
}

// locks serialises driver calls per state directory: the drivers keep one
// state file per lab, not safe for concurrent writers, and an engine
// creates independent resources in parallel.
var locks sync.Map // abs state dir -> *sync.Mutex

func lock(stateDir string) func() {
	m, _ := locks.LoadOrStore(filepath.Clean(stateDir), &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// nodeDeleter is the per-node delete the model needs from a driver (kind's
// DeleteNodes): stop that node and remove its files, nothing else.
type nodeDeleter interface {
	DeleteNode(ctx context.Context, lab *spec.Lab, node string) error
}

// nodeStopper stops a node's service without removing its files.
type nodeStopper interface {
	StopNode(ctx context.Context, lab *spec.Lab, node string) error
}

// newDriver builds the driver of a provider over a state directory.
func newDriver(provider, stateDir, binDir string) (driver.Driver, error) {
	if !filepath.IsAbs(stateDir) {
		return nil, fmt.Errorf("stateDir %q must be an absolute path", stateDir)
	}
	switch provider {
	case "local":
		return &local.Driver{Dir: stateDir, BinDir: binDir}, nil
	case "qemu":
		return &qemu.Driver{Dir: stateDir}, nil
	case "hyperv":
		return &hyperv.Driver{Dir: stateDir}, nil
	default:
		return nil, fmt.Errorf("unknown provider %q (local, qemu, hyperv)", provider)
	}
}

// HyperVJSON is lab's hyperv: block as the resources carry it: JSON for
// the hyperv provider, "" for the others (so their state never changes
// with it).
func HyperVJSON(lab *spec.Lab) string {
	if lab.Provider != "hyperv" {
		return ""
	}
	data, _ := json.Marshal(lab.HyperV) // strings and an int: cannot fail
	return string(data)
}

// hyperVOf decodes HyperVJSON; Check has refused what does not decode.
func hyperVOf(s string) spec.HyperV {
	var h spec.HyperV
	if s != "" {
		_ = json.Unmarshal([]byte(s), &h)
	}
	return h
}

// checkHyperV refuses a hyperv value that is not HyperVJSON's.
func checkHyperV(provider, s string) error {
	if s == "" {
		return nil
	}
	if provider != "hyperv" {
		return fmt.Errorf("hyperv: set for the %s provider (only hyperv uses it)", provider)
	}
	var h spec.HyperV
	if err := json.Unmarshal([]byte(s), &h); err != nil {
		return fmt.Errorf("hyperv: %q is not lab.yaml's hyperv block as JSON: %w", s, err)
	}
	return nil
}

// remote reports whether a provider's nodes are machines reached over SSH.
func remote(provider string) bool { return provider != "local" }

// BinaryPath is the service binary a deployment of role installs: bin/<role>
// for local processes, bin/linux-amd64/<role> (static) for VMs.
func BinaryPath(provider, binDir, role string) string {
	if remote(provider) {
		return filepath.Join(binDir, "linux-amd64", role)
	}
	return filepath.Join(binDir, role)
}

// BinaryHash is "sha256:<hex>" of the binary a deployment of role installs;
// a deployment's BinaryHash input changes (an in-place update) exactly when
// the binary does.
func BinaryHash(provider, binDir, role string) (string, error) {
	p := BinaryPath(provider, binDir, role)
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("%s binary: %w (run make build)", role, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func checkCommon(lab, provider, stateDir string) error {
	if lab == "" {
		return fmt.Errorf("lab: empty")
	}
	if !contains(spec.Providers, provider) {
		return fmt.Errorf("provider: %q is not one of %v", provider, spec.Providers)
	}
	if !filepath.IsAbs(stateDir) {
		return fmt.Errorf("stateDir: %q must be an absolute path", stateDir)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// otherHost is a host address of cidr other than those in avoid: a
// stand-in node when one resource's inputs are checked as a lab.
func otherHost(cidr string, avoid ...string) string {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return ""
	}
	// Not the network's first address either: the hyperv provider keeps it
	// for the Windows host when no gateway is given.
	for ip := p.Addr().Next().Next(); p.Contains(ip); ip = ip.Next() {
		if !contains(avoid, ip.String()) {
			return ip.String()
		}
	}
	return ""
}
