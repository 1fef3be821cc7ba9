package deploy

import (
	"fmt"
	"strings"

	"github.com/calclab/calclab/infra/spec"
)

// Where calclab lives on a node.
const (
	BinDir       = "/opt/calclab/bin"
	EnvDir       = "/etc/calclab"
	UnitDir      = "/etc/systemd/system"
	DataDir      = "/var/lib/calclab" // StateDirectory=calclab
	ServiceUser  = "calclab"          // default system user the services run as
	stateDirName = "calclab"
)

// Unit is the systemd service of one calclab role.
type Unit struct {
	Role        string // spec.RoleMaster or spec.RoleSlave
	Name        string // calclab-master.service
	Description string
	// ExecStart is the binary, /opt/calclab/bin/<role>; the services take
	// all their settings from CALCLAB_* variables in EnvironmentFile.
	ExecStart       string
	EnvironmentFile string // /etc/calclab/<role>.env
	User            string // system user the service runs as
}

// UnitFor returns the unit of role ("master" or "slave"), running as the
// system user "calclab".
func UnitFor(role string) (Unit, error) {
	switch role {
	case spec.RoleMaster, spec.RoleSlave:
	default:
		return Unit{}, fmt.Errorf("deploy: role %q is not %s or %s", role, spec.RoleMaster, spec.RoleSlave)
	}
	return Unit{
		Role:            role,
		Name:            "calclab-" + role + ".service",
		Description:     "calclab " + role,
		ExecStart:       BinDir + "/" + role,
		EnvironmentFile: EnvDir + "/" + role + ".env",
		User:            ServiceUser,
	}, nil
}

// Path is where the unit file goes.
func (u Unit) Path() string { return UnitDir + "/" + u.Name }

// Text is the unit file.
func (u Unit) Text() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Written by calclab (provision/deploy); a deploy overwrites changes.")
	w("[Unit]")
	w("Description=%s", u.Description)
	w("Documentation=https://github.com/calclab/calclab")
	w("Wants=network-online.target")
	w("After=network-online.target")
	w("")
	w("[Service]")
	w("Type=exec")
	w("User=%s", u.User)
	w("Group=%s", u.User)
	w("EnvironmentFile=%s", u.EnvironmentFile)
	w("ExecStart=%s", u.ExecStart)
	w("Restart=always")
	w("RestartSec=1")
	// SIGTERM makes a slave finish its work and deregister; give it time.
	w("KillSignal=SIGTERM")
	w("TimeoutStopSec=30")
	w("StateDirectory=%s", stateDirName)
	w("StateDirectoryMode=0750")
	w("WorkingDirectory=%s", DataDir)
	w("NoNewPrivileges=yes")
	w("ProtectSystem=strict")
	w("ProtectHome=yes")
	w("PrivateTmp=yes")
	w("PrivateDevices=yes")
	w("ProtectKernelTunables=yes")
	w("ProtectKernelModules=yes")
	w("ProtectControlGroups=yes")
	w("RestrictSUIDSGID=yes")
	w("LockPersonality=yes")
	// The rest of the standard hardening (systemd.exec(5)); together they
	// take `systemd-analyze security` from 7.0 MEDIUM to the score that
	// TestUnitSecurityExposure checks. The services only listen on TCP and
	// write their state directory: they need no capability, no other address
	// family and no system call outside @system-service. ProcSubset=pid is
	// left out on purpose: the Prometheus process collector reads /proc/stat
	// (boot time) for process_start_time_seconds.
	w("CapabilityBoundingSet=")
	w("AmbientCapabilities=")
	w("RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX")
	w("SystemCallFilter=@system-service")
	w("SystemCallErrorNumber=EPERM")
	w("SystemCallArchitectures=native")
	w("ProtectClock=yes")
	w("ProtectHostname=yes")
	w("ProtectKernelLogs=yes")
	w("ProtectProc=invisible")
	w("RestrictNamespaces=yes")
	w("RestrictRealtime=yes")
	w("MemoryDenyWriteExecute=yes")
	w("PrivateUsers=yes")
	w("RemoveIPC=yes")
	w("DevicePolicy=closed")
	w("KeyringMode=private")
	w("UMask=0077")
	w("")
	w("[Install]")
	w("WantedBy=multi-user.target")
	return b.String()
}
