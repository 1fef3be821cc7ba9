package qemu

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/internal/freeport"
)

// The lab network has two halves:
//
//   - nat: each VM's first NIC is QEMU user-mode networking (slirp) with
//     restrict=on: the guest gets a private DHCP address and cannot reach
//     anything beyond the host's forwarded ports (it needs no internet: the
//     image holds every package, and deploy copies binaries over SSH). Host
//     ports on 127.0.0.1 are forwarded to the guest's SSH port and its
//     calclab service port. The default route of the guest is here.
//   - lan: each VM's second NIC is plugged into one internal switch holding
//     the static addresses of lab.yaml (nodes[].ip in network.cidr). The
//     host has no address there and never sends to it. The switch is
//     vde_switch (Debian's vde2), run without root and without a tap: a
//     plain layer-2 switch between the VMs' UNIX sockets. When vde_switch is
//     missing the fallback is QEMU's multicast socket backend
//     (-netdev socket,mcast=230.0.0.1:PORT,localaddr=127.0.0.1): every VM
//     joins one multicast group on loopback, with the UDP port derived from
//     the lab name so two labs do not share a segment. It needs no helper
//     process (and worked on a loopback without the MULTICAST flag), but
//     it is a hub, not a switch, and any local process that joins the group
//     sees the lab's traffic. Choose it with Driver.Net = NetMcast.

// Network backends of the internal switch.
const (
	NetVDE   = "vde"
	NetMcast = "mcast"
)

// MAC is the address of a node's internal (lan) NIC: 52:54:00 (QEMU's
// locally administered prefix) and three bytes of a hash of the lab and
// node names, so a node keeps its MAC across lab up/down.
func MAC(lab, node string) string { return mac(lab, node, "lan", 0) }

func mac(lab, node, nic string, salt int) string {
	return spec.NICMAC(spec.QEMUOUI, lab, node, nic, salt)
}

// mcastPort is the UDP port of the multicast fallback, from the lab name,
// so two labs do not share a segment.
func mcastPort(lab string) int {
	h := sha256.Sum256([]byte("mcast\x00" + lab))
	return 20000 + int(binary.BigEndian.Uint16(h[:2]))%10000
}

// pickPort returns want when it is free and not in taken, else a free port.
func pickPort(want int, taken map[int]bool) (int, error) {
	if want > 0 && want < 65536 && !taken[want] && freeport.Bindable(want) {
		taken[want] = true
		return want, nil
	}
	for i := 0; i < 20; i++ {
		p, err := freeport.Loopback()
		if err != nil {
			return 0, err
		}
		if !taken[p] {
			taken[p] = true
			return p, nil
		}
	}
	return 0, errors.New("no free loopback port")
}

// switchState is the running vde_switch.
type switchState struct {
	PID  int    `json:"pid"`
	Sock string `json:"sock"` // the switch's socket directory
	Mgmt string `json:"mgmt"`
	// Own is set when Sock lives outside the lab directory (a short path
	// under /tmp because the lab's was too long for a UNIX socket).
	Own string `json:"own,omitempty"`
}

func (s *switchState) alive(bin string) bool {
	return s != nil && procAlive(s.PID, bin, s.Sock)
}

// maxSockPath leaves room under the 108-byte sun_path for the files
// vde_switch and libvdeplug create in the socket directory.
const maxSockPath = 80

// startSwitch starts vde_switch as a daemon with its sockets under dir.
func startSwitch(ctx context.Context, bin, dir, lab string, ports int) (*switchState, error) {
	st := &switchState{Sock: filepath.Join(dir, "switch"), Mgmt: filepath.Join(dir, "switch.mgmt")}
	if len(st.Sock) > maxSockPath || len(st.Mgmt) > maxSockPath+20 {
		own, err := os.MkdirTemp("", "calclab-"+lab+"-")
		if err != nil {
			return nil, err
		}
		st.Own = own
		st.Sock, st.Mgmt = filepath.Join(own, "switch"), filepath.Join(own, "mgmt")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	_ = os.RemoveAll(st.Sock)
	_ = os.Remove(st.Mgmt)
	pidfile := filepath.Join(dir, "switch.pid")
	_ = os.Remove(pidfile)
	if ports < 32 {
		ports = 32
	}
	cmd := exec.CommandContext(ctx, bin, "--sock", st.Sock, "--mgmt", st.Mgmt, "--pidfile", pidfile, "--daemon", "--numports", strconv.Itoa(ports))
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", bin, err, strings.TrimSpace(string(out)))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(pidfile)
		if err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
				st.PID = pid
				if _, err := os.Stat(filepath.Join(st.Sock, "ctl")); err == nil {
					return st, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s started but did not make %s/ctl in 5s", bin, st.Sock)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
