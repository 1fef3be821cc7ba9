package cloudinit

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

// Fixed test keys (public halves only; generated once with ssh-keygen).
const (
	testKey1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAGgTLfNIHcC10OiZHcMRp83Jm2z0fND9NrNsPdMDTnf lab@host"
	testKey2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAC8M+M4mjYyDCM+ilYidXqfpyW7kouIZiaF2dX7RhXE"
)

// sample is a typical slave VM: a NAT NIC on DHCP and a static lab NIC.
func sample() Config {
	return Config{
		InstanceID:     "calclab-slave1-0001",
		Hostname:       "slave1",
		User:           "lab",
		AuthorizedKeys: []string{testKey1},
		Interfaces: []Interface{
			{MAC: "52:54:00:AA:00:01", DHCP: true},
			{MAC: "52:54:00:bb:00:01", Address: netip.MustParsePrefix("10.10.0.11/24"), Gateway: netip.MustParseAddr("10.10.0.1")},
		},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

func TestGolden(t *testing.T) {
	twoKeys := sample()
	twoKeys.AuthorizedKeys = append(twoKeys.AuthorizedKeys, testKey2)
	twoKeys.Interfaces = []Interface{
		{MAC: "52:54:00:aa:00:02", Name: "nat0", DHCP: true},
		{MAC: "52:54:00:bb:00:02", Name: "lab0", Address: netip.MustParsePrefix("10.10.0.12/24")},
		{MAC: "52:54:00:cc:00:02", Address: netip.MustParsePrefix("fd00:10::12/64"), Gateway: netip.MustParseAddr("fd00:10::1")},
	}
	for _, tc := range []struct {
		name string
		c    Config
	}{
		{"slave", sample()},
		{"named", twoKeys},
	} {
		for _, doc := range []struct {
			file string
			fn   func(Config) ([]byte, error)
		}{
			{MetaDataFile, MetaData},
			{UserDataFile, UserData},
			{NetworkConfigFile, NetworkConfig},
		} {
			t.Run(tc.name+"/"+doc.file, func(t *testing.T) {
				got, err := doc.fn(tc.c)
				if err != nil {
					t.Fatal(err)
				}
				// Every document must be valid YAML.
				var v map[string]any
				if err := yaml.Unmarshal(got, &v); err != nil {
					t.Fatalf("not YAML: %v\n%s", err, got)
				}
				golden(t, tc.name+"."+doc.file, got)
			})
		}
	}
}

// TestUserDataContents checks the settings that matter, independently of
// the golden files, so a careless -update cannot drop them.
func TestUserDataContents(t *testing.T) {
	ud, err := UserData(sample())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(ud, []byte("#cloud-config\n")) {
		t.Fatalf("user-data must start with #cloud-config:\n%s", ud)
	}
	var doc struct {
		Users []struct {
			Name       string   `yaml:"name"`
			Sudo       string   `yaml:"sudo"`
			Shell      string   `yaml:"shell"`
			LockPasswd *bool    `yaml:"lock_passwd"`
			Keys       []string `yaml:"ssh_authorized_keys"`
		} `yaml:"users"`
		SSHPwauth     *bool          `yaml:"ssh_pwauth"`
		DisableRoot   *bool          `yaml:"disable_root"`
		PackageUpdate *bool          `yaml:"package_update"`
		Packages      any            `yaml:"packages"`
		Rest          map[string]any `yaml:",inline"`
	}
	if err := yaml.Unmarshal(ud, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Users) != 1 {
		t.Fatalf("users = %+v, want exactly the lab user", doc.Users)
	}
	u := doc.Users[0]
	if u.Name != "lab" || u.Sudo != "ALL=(ALL) NOPASSWD:ALL" || u.Shell != "/bin/bash" ||
		u.LockPasswd == nil || !*u.LockPasswd || len(u.Keys) != 1 || u.Keys[0] != testKey1 {
		t.Errorf("user = %+v", u)
	}
	if doc.SSHPwauth == nil || *doc.SSHPwauth {
		t.Error("ssh_pwauth must be false")
	}
	if doc.DisableRoot == nil || !*doc.DisableRoot {
		t.Error("disable_root must be true")
	}
	if doc.PackageUpdate == nil || *doc.PackageUpdate {
		t.Error("package_update must be false")
	}
	if doc.Packages != nil {
		t.Error("user-data must not install packages (no internet in the lab)")
	}
	for _, k := range []string{"runcmd", "bootcmd", "apt", "snap", "write_files"} {
		if _, ok := doc.Rest[k]; ok {
			t.Errorf("unexpected %s in user-data", k)
		}
	}
}

func TestNetworkConfigContents(t *testing.T) {
	nc, err := NetworkConfig(sample())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version   int `yaml:"version"`
		Ethernets map[string]struct {
			Match struct {
				MAC string `yaml:"macaddress"`
			} `yaml:"match"`
			SetName   string   `yaml:"set-name"`
			DHCP4     bool     `yaml:"dhcp4"`
			Addresses []string `yaml:"addresses"`
			Routes    []struct {
				To, Via string
			} `yaml:"routes"`
		} `yaml:"ethernets"`
	}
	if err := yaml.Unmarshal(nc, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != 2 || len(doc.Ethernets) != 2 {
		t.Fatalf("got %+v", doc)
	}
	nat, lab := doc.Ethernets["eth0"], doc.Ethernets["eth1"]
	if nat.Match.MAC != "52:54:00:aa:00:01" || nat.SetName != "eth0" || !nat.DHCP4 || len(nat.Addresses) != 0 {
		t.Errorf("eth0 = %+v (MAC must be normalised to lower case)", nat)
	}
	if lab.Match.MAC != "52:54:00:bb:00:01" || lab.SetName != "eth1" || lab.DHCP4 ||
		len(lab.Addresses) != 1 || lab.Addresses[0] != "10.10.0.11/24" ||
		len(lab.Routes) != 1 || lab.Routes[0].To != "0.0.0.0/0" || lab.Routes[0].Via != "10.10.0.1" {
		t.Errorf("eth1 = %+v", lab)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string // substring of the error; "" means valid
	}{
		{"valid", func(c *Config) {}, ""},
		{"dhcp only", func(c *Config) { c.Interfaces = c.Interfaces[:1] }, ""},
		{"static only", func(c *Config) { c.Interfaces = c.Interfaces[1:] }, ""},
		{"hyphenated hostname", func(c *Config) { c.Hostname = "slave-1" }, ""},
		{"mac with dashes", func(c *Config) { c.Interfaces[0].MAC = "52-54-00-aa-00-01" }, ""},
		{"key without comment", func(c *Config) { c.AuthorizedKeys = []string{testKey2} }, ""},
		{"empty instance id", func(c *Config) { c.InstanceID = "" }, "instance id: must not be empty"},
		{"instance id with space", func(c *Config) { c.InstanceID = "a b" }, "instance id"},
		{"empty hostname", func(c *Config) { c.Hostname = "" }, "hostname: \"\" is not a DNS label"},
		{"hostname with dot", func(c *Config) { c.Hostname = "slave1.lab" }, "is not a DNS label"},
		{"hostname with underscore", func(c *Config) { c.Hostname = "slave_1" }, "is not a DNS label"},
		{"hostname leading hyphen", func(c *Config) { c.Hostname = "-slave" }, "is not a DNS label"},
		{"hostname trailing hyphen", func(c *Config) { c.Hostname = "slave-" }, "is not a DNS label"},
		{"hostname too long", func(c *Config) { c.Hostname = strings.Repeat("a", 64) }, "is not a DNS label"},
		{"empty user", func(c *Config) { c.User = "" }, "user: must not be empty"},
		{"user upper case", func(c *Config) { c.User = "Lab" }, "not a valid user name"},
		{"user with space", func(c *Config) { c.User = "la b" }, "not a valid user name"},
		{"root user", func(c *Config) { c.User = "root" }, "must not be root"},
		{"no key", func(c *Config) { c.AuthorizedKeys = nil }, "at least one SSH public key"},
		{"garbage key", func(c *Config) { c.AuthorizedKeys = []string{"not a key"} }, "authorized keys[0]: not an SSH public key"},
		{"two-line key", func(c *Config) { c.AuthorizedKeys = []string{testKey1 + "\n" + testKey2} }, "single line"},
		{"no interfaces", func(c *Config) { c.Interfaces = nil }, "interfaces: at least one"},
		{"bad mac", func(c *Config) { c.Interfaces[1].MAC = "52:54:00:zz:00:01" }, "interfaces[1].mac: \"52:54:00:zz:00:01\" is not a MAC address"},
		{"empty mac", func(c *Config) { c.Interfaces[0].MAC = "" }, "interfaces[0].mac"},
		{"short mac", func(c *Config) { c.Interfaces[0].MAC = "52:54:00:aa:00" }, "is not a MAC address"},
		{"eui-64 mac", func(c *Config) { c.Interfaces[0].MAC = "02:00:5e:10:00:00:00:01" }, "is not a MAC address"},
		{"multicast mac", func(c *Config) { c.Interfaces[0].MAC = "01:00:5e:00:00:01" }, "multicast"},
		{"duplicate mac", func(c *Config) { c.Interfaces[1].MAC = "52:54:00:AA:00:01" }, "is also interfaces[0]'s"},
		{"duplicate name", func(c *Config) { c.Interfaces[1].Name = "eth0" }, "interfaces[1].name: \"eth0\" is also"},
		{"bad name", func(c *Config) { c.Interfaces[0].Name = "a very long name!" }, "not an interface name"},
		{"neither address nor dhcp", func(c *Config) { c.Interfaces[0].DHCP = false }, "interfaces[0]: has neither"},
		{"gateway without address", func(c *Config) { c.Interfaces[0].Gateway = netip.MustParseAddr("10.0.2.2") }, "needs a static address"},
		{"gateway outside", func(c *Config) { c.Interfaces[1].Gateway = netip.MustParseAddr("10.20.0.1") }, "10.20.0.1 is not inside 10.10.0.11/24"},
		{"gateway other family", func(c *Config) { c.Interfaces[1].Gateway = netip.MustParseAddr("fd00::1") }, "is not inside"},
		{"gateway is self", func(c *Config) { c.Interfaces[1].Gateway = netip.MustParseAddr("10.10.0.11") }, "own address"},
		{"network address", func(c *Config) { c.Interfaces[1].Address = netip.MustParsePrefix("10.10.0.0/24") }, "is a network address"},
		{"unspecified address", func(c *Config) { c.Interfaces[1].Address = netip.MustParsePrefix("0.0.0.0/0") }, "not a host address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sample()
			tc.change(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
			// Every generator refuses an invalid Config.
			for _, fn := range []func(Config) ([]byte, error){MetaData, UserData, NetworkConfig} {
				if _, err := fn(c); err == nil {
					t.Error("a document was generated for an invalid config")
				}
			}
			if err := WriteISO(filepath.Join(t.TempDir(), "seed.iso"), c); err == nil {
				t.Error("WriteISO accepted an invalid config")
			}
		})
	}
}

// TestPyYAMLReadsStrings loads the documents with PyYAML, the YAML 1.1
// parser cloud-init uses, and checks that values that look like numbers or
// booleans to YAML 1.1 (an all-digit MAC is a base-60 integer there) still
// come out as strings. Skipped without python3 and its yaml module.
func TestPyYAMLReadsStrings(t *testing.T) {
	if err := exec.Command("python3", "-c", "import yaml").Run(); err != nil {
		t.Skip("python3 with PyYAML not available (apt-get install python3-yaml)")
	}
	c := sample()
	c.InstanceID = "12345"
	c.Hostname = "123"
	c.User = "no"
	c.Interfaces[0].MAC = "52:54:00:12:34:56"
	c.Interfaces[1].Name = "on"
	files, err := Files(c)
	if err != nil {
		t.Fatal(err)
	}
	// Prints every scalar of the document with its Python type.
	const script = `
import sys, yaml
def walk(v, path):
    if isinstance(v, dict):
        for k, x in v.items():
            print("%s.key %s %r" % (path, type(k).__name__, k))
            walk(x, "%s.%s" % (path, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            walk(x, "%s[%d]" % (path, i))
    else:
        print("%s %s %r" % (path, type(v).__name__, v))
walk(yaml.safe_load(sys.stdin), "")
`
	for name, data := range files {
		cmd := exec.Command("python3", "-c", script)
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("PyYAML cannot load %s: %v\n%s\n%s", name, err, out, data)
		}
		for _, want := range map[string][]string{
			MetaDataFile:      {".instance-id str '12345'", ".local-hostname str '123'"},
			UserDataFile:      {".hostname str '123'", ".users[0].name str 'no'", ".ssh_pwauth bool False", ".disable_root bool True", ".package_update bool False"},
			NetworkConfigFile: {".ethernets.eth0.match.macaddress str '52:54:00:12:34:56'", ".ethernets.key str 'on'", ".ethernets.on.set-name str 'on'", ".ethernets.on.addresses[0] str '10.10.0.11/24'", ".version int 2"},
		}[name] {
			if !strings.Contains(string(out), want+"\n") {
				t.Errorf("%s as PyYAML reads it lacks %q:\n%s", name, want, out)
			}
		}
	}
}
