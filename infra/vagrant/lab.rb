# calclab's lab.yaml for Vagrant, in plain Ruby (no Vagrant needed): read
# the spec with infra/spec's defaults and derive what the Go side derives
# (MAC addresses, the services' environment file and systemd unit, the
# in-guest static address). Loaded by the root Vagrantfile; infra/vagrant/vagrant_test.go compares every derived
# value with the Go packages (hyperv/qemu MACs, provision/deploy units).
require "digest"
require "ipaddr"
require "yaml"

module Calclab
  # Lab is lab.yaml with the same defaults as infra/spec.
  class Lab
    attr_reader :file, :name, :network, :cidr, :gateway, :prefix, :ssh_user, :services, :nodes

    NAME = /\A[a-z][a-z0-9-]{0,30}\z/

    def self.load(path)
      raise ArgumentError, "calclab: lab spec #{path} not found (set CALCLAB_LAB)" unless File.file?(path)
      new(YAML.safe_load(File.read(path)) || {}, path)
    end

    def initialize(doc, file)
      @file = file
      fail_at("", "the file is not a YAML mapping") unless doc.is_a?(Hash)
      @name = doc["name"] || "calclab"
      fail_at("name", "#{@name.inspect} must be lower-case letters, digits and dashes") unless NAME.match?(@name.to_s)
      net = doc["network"] || {}
      @network = net["name"] || "#{@name}-internal"
      @cidr = net["cidr"] || "192.168.56.0/24"
      begin
        range = IPAddr.new(@cidr)
      rescue IPAddr::Error
        fail_at("network.cidr", "#{@cidr.inspect} is not an IPv4 network")
      end
      @prefix = @cidr.split("/")[1].to_i
      # The host's address on the switch, the NAT gateway of the guests:
      # the spec's gateway, else the first host address (as the hyperv driver).
      @gateway = net["gateway"] || range.to_range.first.succ.to_s
      @ssh_user = doc["ssh_user"] || "lab"
      s = doc["services"] || {}
      @services = {
        "master_port" => s["master_port"] || 5000,
        "slave_port" => s["slave_port"] || 6001,
        "policy" => s["policy"] || "least-conn",
        "token" => s["token"] || "",
      }
      @nodes = (doc["nodes"] || []).each_with_index.map do |n, i|
        fail_at("nodes[#{i}]", "must be a mapping") unless n.is_a?(Hash)
        node = {
          "name" => n["name"].to_s, "role" => n["role"].to_s, "ip" => n["ip"].to_s,
          "cpus" => n["cpus"] || 1, "memory_mb" => n["memory_mb"] || 1024, "disk_gb" => n["disk_gb"] || 4,
        }
        fail_at("nodes[#{i}].name", "#{node["name"].inspect} must be lower-case letters, digits and dashes") unless NAME.match?(node["name"])
        fail_at("nodes[#{i}].role", "#{node["role"].inspect} must be master or slave") unless %w[master slave].include?(node["role"])
        begin
          ok = range.include?(IPAddr.new(node["ip"]))
        rescue IPAddr::Error
          ok = false
        end
        fail_at("nodes[#{i}].ip", "#{node["ip"].inspect} is not an address inside #{@cidr}") unless ok
        node
      end
      masters = @nodes.count { |n| n["role"] == "master" }
      fail_at("nodes", "a lab needs exactly one master node, found #{masters}") unless masters == 1
      fail_at("nodes", "a lab needs at least one slave node") if @nodes.size < 2
    end

    def master
      @nodes.find { |n| n["role"] == "master" }
    end

    # MAC of a node's NIC on the internal switch: a fixed prefix and three
    # bytes of sha256(lab, node, "lan", 0), as qemu.MAC in Go, so a machine
    # keeps its MAC (and its static address) across destroy/up.
    def mac(node, prefix)
      h = Digest::SHA256.digest([@name, node, "lan", "0"].join("\x00")).bytes
      (prefix + h[0, 3]).map { |b| format("%02x", b) }.join(":")
    end

    # Hyper-V's own OUI 00:15:5D, in the colon-less form hv.mac wants.
    def hyperv_mac(node)
      mac(node, [0x00, 0x15, 0x5d]).delete(":").upcase
    end

    # QEMU's/libvirt's 52:54:00.
    def libvirt_mac(node)
      mac(node, [0x52, 0x54, 0x00])
    end

    # Environment of a node's service (as provision/deploy.EnvFor).
    def env(node)
      s = @services
      e = {}
      e["CALCLAB_TOKEN"] = s["token"] unless s["token"].to_s.empty?
      if node["role"] == "master"
        e["CALCLAB_LISTEN"] = "0.0.0.0:#{s["master_port"]}"
        e["CALCLAB_DATA_DIR"] = "/var/lib/calclab"
        e["CALCLAB_ALLOW_CIDR"] = @cidr
        e["CALCLAB_POLICY"] = s["policy"]
      else
        e["CALCLAB_LISTEN"] = "0.0.0.0:#{s["slave_port"]}"
        e["CALCLAB_MASTER"] = "http://#{master["ip"]}:#{s["master_port"]}"
        e["CALCLAB_ID"] = node["name"]
        e["CALCLAB_ADVERTISE"] = "http://#{node["ip"]}:#{s["slave_port"]}"
      end
      e
    end

    # The in-guest network configuration giving the internal NIC (matched by
    # MAC) its static address: netplan where the image has it, else
    # systemd-networkd (Debian).
    def netplan(node, mac)
      <<~YAML
        network:
          version: 2
          ethernets:
            calclab0:
              match:
                macaddress: "#{mac}"
              set-name: calclab0
              dhcp4: false
              addresses: [#{node["ip"]}/#{@prefix}]
              routes:
                - to: default
                  via: #{@gateway}
              nameservers:
                addresses: [#{@gateway}]
      YAML
    end

    def networkd(node, mac)
      <<~INI
        [Match]
        MACAddress=#{mac}

        [Network]
        Address=#{node["ip"]}/#{@prefix}
        Gateway=#{@gateway}
        DNS=#{@gateway}
      INI
    end

    private

    def fail_at(field, msg)
      where = field.empty? ? @file : "#{@file}: #{field}"
      raise ArgumentError, "calclab: #{where}: #{msg}"
    end
  end

  # Shell run in the guest (as root) to apply the static address.
  def self.static_ip_script(lab, node, mac)
    <<~SH
      set -eu
      if command -v netplan >/dev/null 2>&1; then
        cat > /etc/netplan/60-calclab.yaml <<'EOF'
      #{lab.netplan(node, mac).rstrip}
      EOF
        chmod 600 /etc/netplan/60-calclab.yaml
        netplan apply
      else
        mkdir -p /etc/systemd/network
        cat > /etc/systemd/network/60-calclab.network <<'EOF'
      #{lab.networkd(node, mac).rstrip}
      EOF
        systemctl enable systemd-networkd >/dev/null 2>&1 || true
        systemctl restart systemd-networkd
      fi
      echo "calclab: #{node["name"]} has #{node["ip"]}/#{lab.prefix} on the NIC #{mac}"
    SH
  end

  # The systemd unit of a role, byte for byte provision/deploy's Unit.Text
  # (vagrant_test.go compares them).
  def self.unit_text(role)
    <<~UNIT
      # Written by calclab (provision/deploy); a deploy overwrites changes.
      [Unit]
      Description=calclab #{role}
      Documentation=https://github.com/calclab/calclab
      Wants=network-online.target
      After=network-online.target

      [Service]
      Type=exec
      User=calclab
      Group=calclab
      EnvironmentFile=/etc/calclab/#{role}.env
      ExecStart=/opt/calclab/bin/#{role}
      Restart=always
      RestartSec=1
      KillSignal=SIGTERM
      TimeoutStopSec=30
      StateDirectory=calclab
      StateDirectoryMode=0750
      WorkingDirectory=/var/lib/calclab
      NoNewPrivileges=yes
      ProtectSystem=strict
      ProtectHome=yes
      PrivateTmp=yes
      PrivateDevices=yes
      ProtectKernelTunables=yes
      ProtectKernelModules=yes
      ProtectControlGroups=yes
      RestrictSUIDSGID=yes
      LockPersonality=yes
      CapabilityBoundingSet=
      AmbientCapabilities=
      RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
      SystemCallFilter=@system-service
      SystemCallErrorNumber=EPERM
      SystemCallArchitectures=native
      ProtectClock=yes
      ProtectHostname=yes
      ProtectKernelLogs=yes
      ProtectProc=invisible
      RestrictNamespaces=yes
      RestrictRealtime=yes
      MemoryDenyWriteExecute=yes
      PrivateUsers=yes
      RemoveIPC=yes
      DevicePolicy=closed
      KeyringMode=private
      UMask=0077

      [Install]
      WantedBy=multi-user.target
    UNIT
  end

  # The EnvironmentFile of a node, byte for byte provision/deploy's EnvFile.
  def self.env_file(lab, node)
    "# Written by calclab (provision/deploy); a deploy overwrites changes.\n" +
      lab.env(node).sort.map { |k, v| "#{k}=\"#{v}\"\n" }.join
  end

  # Shell run in the guest (as root) installing a service where
  # provision/deploy puts it: user calclab, binary in /opt/calclab/bin, env
  # file in /etc/calclab, unit calclab-<role>.service; restarted only when
  # the binary, the env or the unit changed (the file provisioner uploaded
  # the binary to /tmp/calclab-<role>).
  def self.deploy_script(lab, node)
    role = node["role"]
    files = { "/etc/calclab/#{role}.env" => [env_file(lab, node), "0600"],
              "/etc/systemd/system/calclab-#{role}.service" => [unit_text(role), "0644"] }
    writes = files.map do |path, (text, mode)|
      <<~SH
        cat > #{path}.new <<'CALCLAB_EOF'
        #{text.chomp}
        CALCLAB_EOF
        chmod #{mode} #{path}.new
        if cmp -s #{path}.new #{path}; then rm #{path}.new; else mv #{path}.new #{path}; changed=1; fi
      SH
    end.join
    <<~SH
      set -eu
      changed=0
      id calclab >/dev/null 2>&1 || useradd --system --home-dir /var/lib/calclab --shell /usr/sbin/nologin calclab
      install -d -m 0755 /opt/calclab/bin /etc/calclab
      if ! cmp -s /tmp/calclab-#{role} /opt/calclab/bin/#{role}; then
        install -m 0755 /tmp/calclab-#{role} /opt/calclab/bin/#{role}; changed=1
      fi
      #{writes.rstrip}
      systemctl daemon-reload
      systemctl enable calclab-#{role}.service >/dev/null 2>&1
      if [ "$changed" = 1 ]; then
        systemctl restart calclab-#{role}.service; echo "calclab: #{node["name"]}: #{role} installed/updated, restarted"
      else
        systemctl start calclab-#{role}.service; echo "calclab: #{node["name"]}: #{role} unchanged"
      fi
    SH
  end
end
