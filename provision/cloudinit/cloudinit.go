// Package cloudinit builds the NoCloud seed a lab VM boots with: the
// meta-data, user-data and network-config documents and the "cidata" ISO
// that carries them (what cloud-localds makes, without needing it).
//
// The user-data never needs the internet: no package installs or upgrades,
// only the login user, its SSH keys, and SSH hardening. The network-config
// (version 2) matches each NIC by MAC address, so it does not depend on the
// order or the names the guest kernel gives the NICs.
//
// Known to work with cloud-init 22.4 and `datasource_list: [ NoCloud, None ]`
// in the image: it finds the ISO by its label, applies the network-config
// (static address on the second virtio NIC) and installs the SSH key.
package cloudinit

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"
)

// VolumeLabel is the label NoCloud looks for.
const VolumeLabel = "cidata"

// Names of the files in the seed, exactly as cloud-init reads them.
const (
	MetaDataFile      = "meta-data"
	UserDataFile      = "user-data"
	NetworkConfigFile = "network-config"
)

// Interface is one NIC of the VM.
type Interface struct {
	// MAC is the NIC's MAC address (e.g. 52:54:00:12:34:56); the
	// network-config matches the NIC by it.
	MAC string
	// Address is the static address with its prefix length (10.10.0.11/24);
	// the zero Prefix means none (then DHCP must be set).
	Address netip.Prefix
	// Gateway is the optional default route through this NIC; it must lie
	// inside Address.
	Gateway netip.Addr
	// DHCP asks for an IPv4 address by DHCP (the NAT NIC).
	DHCP bool
	// Name is the name the NIC is given (set-name); default "eth<index>".
	Name string
}

// Config describes one VM's seed.
type Config struct {
	// InstanceID identifies this instance of the VM: cloud-init runs its
	// once-per-instance modules again when it changes, so change it when
	// the VM is recreated with a different configuration.
	InstanceID string
	// Hostname is a DNS label (node1, slave-2).
	Hostname string
	// User is the login user created with passwordless sudo.
	User string
	// AuthorizedKeys are the user's SSH public keys, authorized_keys format.
	AuthorizedKeys []string
	// Interfaces are the VM's NICs.
	Interfaces []Interface
}

var (
	dnsLabel  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	userName  = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	ifaceName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]{0,14}$`)
)

// Validate reports the first thing wrong with c, naming the field.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("cloudinit: %s: %s", field, fmt.Sprintf(format, args...))
	}
	if c.InstanceID == "" {
		return bad("instance id", "must not be empty")
	}
	if strings.ContainsFunc(c.InstanceID, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' }) {
		return bad("instance id", "%q must not contain spaces, control characters or '/'", c.InstanceID)
	}
	if !dnsLabel.MatchString(c.Hostname) {
		return bad("hostname", "%q is not a DNS label (1-63 letters, digits and '-', not starting or ending with '-')", c.Hostname)
	}
	if c.User == "" {
		return bad("user", "must not be empty")
	}
	if !userName.MatchString(c.User) {
		return bad("user", "%q is not a valid user name (lower-case letters, digits, '_' and '-', starting with a letter or '_', at most 32)", c.User)
	}
	if c.User == "root" {
		return bad("user", "must not be root (root login is disabled)")
	}
	if len(c.AuthorizedKeys) == 0 {
		return bad("authorized keys", "at least one SSH public key is needed, or nobody can log in")
	}
	for i, k := range c.AuthorizedKeys {
		if strings.ContainsAny(k, "\r\n") {
			return bad(fmt.Sprintf("authorized keys[%d]", i), "must be a single line")
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			return bad(fmt.Sprintf("authorized keys[%d]", i), "not an SSH public key in authorized_keys format: %v", err)
		}
	}
	if len(c.Interfaces) == 0 {
		return bad("interfaces", "at least one is needed")
	}
	macs, names := map[string]int{}, map[string]int{}
	for i, ifc := range c.Interfaces {
		field := fmt.Sprintf("interfaces[%d]", i)
		mac, err := net.ParseMAC(ifc.MAC)
		if err != nil || len(mac) != 6 {
			return bad(field+".mac", "%q is not a MAC address like 52:54:00:12:34:56", ifc.MAC)
		}
		if mac[0]&1 == 1 {
			return bad(field+".mac", "%q is a multicast address", ifc.MAC)
		}
		if j, dup := macs[mac.String()]; dup {
			return bad(field+".mac", "%s is also interfaces[%d]'s", mac, j)
		}
		macs[mac.String()] = i
		name := ifc.name(i)
		if !ifaceName.MatchString(name) {
			return bad(field+".name", "%q is not an interface name (a letter, then letters, digits, '_' or '-', at most 15)", name)
		}
		if j, dup := names[name]; dup {
			return bad(field+".name", "%q is also interfaces[%d]'s", name, j)
		}
		names[name] = i
		if !ifc.Address.IsValid() {
			if !ifc.DHCP {
				return bad(field, "has neither a static address nor DHCP")
			}
			if ifc.Gateway.IsValid() {
				return bad(field+".gateway", "needs a static address on the interface")
			}
			continue
		}
		a := ifc.Address.Addr()
		if a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() {
			return bad(field+".address", "%s is not a host address", ifc.Address)
		}
		if a.Is4() && ifc.Address.Bits() < 31 && a == ifc.Address.Masked().Addr() {
			return bad(field+".address", "%s is a network address, not a host address (give the VM's own address, like %s)", ifc.Address, ifc.Address.Masked().Addr().Next().String()+fmt.Sprintf("/%d", ifc.Address.Bits()))
		}
		if ifc.Gateway.IsValid() {
			if ifc.Gateway.Is4() != a.Is4() || !ifc.Address.Contains(ifc.Gateway) {
				return bad(field+".gateway", "%s is not inside %s", ifc.Gateway, ifc.Address)
			}
			if ifc.Gateway == a {
				return bad(field+".gateway", "%s is the interface's own address", ifc.Gateway)
			}
		}
	}
	return nil
}

func (ifc Interface) name(i int) string {
	if ifc.Name != "" {
		return ifc.Name
	}
	return fmt.Sprintf("eth%d", i)
}

// MetaData returns the meta-data document (instance-id, local-hostname).
func MetaData(c Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return marshal("", struct {
		InstanceID    quoted `yaml:"instance-id"`
		LocalHostname quoted `yaml:"local-hostname"`
	}{quoted(c.InstanceID), quoted(c.Hostname)})
}

type userDoc struct {
	Hostname          quoted       `yaml:"hostname"`
	ManageEtcHosts    bool         `yaml:"manage_etc_hosts"`
	Users             []userConfig `yaml:"users"`
	SSHPwauth         bool         `yaml:"ssh_pwauth"`
	DisableRoot       bool         `yaml:"disable_root"`
	PackageUpdate     bool         `yaml:"package_update"`
	PackageUpgrade    bool         `yaml:"package_upgrade"`
	PackageRebootIfRq bool         `yaml:"package_reboot_if_required"`
}

type userConfig struct {
	Name              quoted   `yaml:"name"`
	Gecos             string   `yaml:"gecos"`
	Sudo              string   `yaml:"sudo"`
	Shell             string   `yaml:"shell"`
	LockPasswd        bool     `yaml:"lock_passwd"`
	SSHAuthorizedKeys []quoted `yaml:"ssh_authorized_keys"`
}

// UserData returns the #cloud-config user-data: the login user with
// passwordless sudo and the SSH keys, password login and root login off,
// and no package installs or updates (the lab has no internet).
func UserData(c Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	keys := make([]quoted, len(c.AuthorizedKeys))
	for i, k := range c.AuthorizedKeys {
		keys[i] = quoted(strings.TrimSpace(k))
	}
	return marshal("#cloud-config\n", userDoc{
		Hostname:       quoted(c.Hostname),
		ManageEtcHosts: true,
		Users: []userConfig{{
			Name:              quoted(c.User),
			Gecos:             "calclab lab user",
			Sudo:              "ALL=(ALL) NOPASSWD:ALL",
			Shell:             "/bin/bash",
			LockPasswd:        true,
			SSHAuthorizedKeys: keys,
		}},
		SSHPwauth:   false,
		DisableRoot: true,
	})
}

type netDoc struct {
	Version   int                 `yaml:"version"`
	Ethernets map[quoted]ethernet `yaml:"ethernets"`
}

type ethernet struct {
	Match struct {
		MACAddress quoted `yaml:"macaddress"`
	} `yaml:"match"`
	SetName   quoted   `yaml:"set-name"`
	DHCP4     bool     `yaml:"dhcp4"`
	DHCP6     bool     `yaml:"dhcp6"`
	Addresses []quoted `yaml:"addresses,omitempty"`
	Routes    []route  `yaml:"routes,omitempty"`
}

type route struct {
	To  quoted `yaml:"to"`
	Via quoted `yaml:"via"`
}

// quoted is a string always written double-quoted. cloud-init reads YAML
// 1.1 (PyYAML), where plain 52:54:00:12:34:56 is a base-60 integer and a
// host or interface named "no" or "123" would not be a string.
type quoted string

func (q quoted) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.DoubleQuotedStyle, Value: string(q)}, nil
}

// NetworkConfig returns the version 2 network-config: one ethernet per
// interface, matched by MAC and renamed (set-name), with its static
// address and default route, and DHCPv4 where DHCP is set.
func NetworkConfig(c Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	doc := netDoc{Version: 2, Ethernets: map[quoted]ethernet{}}
	for i, ifc := range c.Interfaces {
		mac, _ := net.ParseMAC(ifc.MAC)
		e := ethernet{SetName: quoted(ifc.name(i)), DHCP4: ifc.DHCP}
		e.Match.MACAddress = quoted(mac.String())
		if ifc.Address.IsValid() {
			e.Addresses = []quoted{quoted(ifc.Address.String())}
		}
		if ifc.Gateway.IsValid() {
			to := "0.0.0.0/0"
			if ifc.Gateway.Is6() {
				to = "::/0"
			}
			// routes rather than the deprecated gateway4; "0.0.0.0/0"
			// rather than "default", which older cloud-init rejects.
			e.Routes = []route{{To: quoted(to), Via: quoted(ifc.Gateway.String())}}
		}
		doc.Ethernets[e.SetName] = e
	}
	return marshal("", doc)
}

func marshal(header string, v any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("cloudinit: encode: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("cloudinit: encode: %w", err)
	}
	return b.Bytes(), nil
}

// Files returns the seed's files by name (meta-data, user-data,
// network-config).
func Files(c Config) (map[string][]byte, error) {
	md, err := MetaData(c)
	if err != nil {
		return nil, err
	}
	ud, err := UserData(c)
	if err != nil {
		return nil, err
	}
	nc, err := NetworkConfig(c)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{MetaDataFile: md, UserDataFile: ud, NetworkConfigFile: nc}, nil
}

// WriteISO writes the NoCloud seed for c to path: an ISO 9660 image
// labelled "cidata" holding meta-data, user-data and network-config, with
// Rock Ridge and Joliet names so Linux (and Windows) see those exact names.
// The same Config always gives the same bytes. The file is written to a
// temporary name next to path and renamed into place.
func WriteISO(path string, c Config) error {
	files, err := Files(c)
	if err != nil {
		return err
	}
	var img bytes.Buffer
	err = writeFlatISO(&img, VolumeLabel, []isoFile{
		{MetaDataFile, files[MetaDataFile]},
		{UserDataFile, files[UserDataFile]},
		{NetworkConfigFile, files[NetworkConfigFile]},
	})
	if err != nil {
		return fmt.Errorf("cloudinit: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("cloudinit: write seed: %w", err)
	}
	_, werr := tmp.Write(img.Bytes())
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cloudinit: write seed %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cloudinit: write seed %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cloudinit: write seed %s: %w", path, err)
	}
	return nil
}
