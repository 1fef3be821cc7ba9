# Vagrant-side Hyper-V preparation for calclab (needs Vagrant loaded; the
# root Vagrantfile requires it). See lab.rb for the spec and derivations.
require "fileutils"

module Calclab
  # Error is what Vagrant prints as a clean one-line failure (no backtrace).
  class Error < Vagrant::Errors::VagrantError
    def initialize(msg)
      @msg = msg
      super()
    end

    def error_message
      @msg
    end
  end

  # HyperVPrepare runs right before Vagrant's Hyper-V provider starts a VM
  # (hooked in front of VagrantPlugins::HyperV::Action::StartInstance by the
  # Vagrantfile's inline plugin: no VAGRANT_EXPERIMENTAL needed). The VM is
  # imported and off:
  #   - the lab's internal switch + NAT exist (the hyperv provider's own
  #     PowerShell, written by `lab plan --provider hyperv --out DIR`);
  #   - Secure Boot uses the MicrosoftUEFICertificateAuthority template, the
  #     one Linux boots with (hashicorp/vagrant#10508);
  #   - the node's NoCloud seed ISO (static IP matched by the pinned MAC)
  #     is in its DVD drive, so the guest has its address at first boot and
  #     Vagrant's wait for the IP ends (#8384, #10329).
  class HyperVPrepare
    def initialize(app, env)
      @app = app
    end

    def call(env)
      machine = env[:machine]
      Calclab.hyperv_network!(env[:ui])
      seed = File.join(Calclab.plan_dir, machine.name.to_s, "seed.iso")
      script = Calclab.hyperv_vm_script(machine.id, File.file?(seed) ? seed : nil)
      env[:ui].detail("calclab: Secure Boot template MicrosoftUEFICertificateAuthority#{File.file?(seed) ? ", seed #{seed}" : ""}")
      ps1 = File.join(Calclab.plan_dir, machine.name.to_s, "prepare-vm.ps1")
      FileUtils.mkdir_p(File.dirname(ps1))
      File.write(ps1, script)
      r = Vagrant::Util::PowerShell.execute(ps1)
      raise Calclab::Error, "calclab: #{ps1} failed: #{r.stderr}" if r.exit_code != 0
      @app.call(env)
    end
  end

  # Where `lab plan --provider hyperv --out` writes the PowerShell and seeds.
  def self.plan_dir
    File.join(ROOT, ".lab", "vagrant-hyperv")
  end

  # hyperv_network! writes and runs the switch + NAT PowerShell once per
  # vagrant run (it is idempotent on the host anyway).
  def self.hyperv_network!(ui)
    return if @network_done
    lab_bin = ENV["CALCLAB_LAB_BIN"] || File.join(ROOT, "bin", Gem.win_platform? ? "lab.exe" : "lab")
    ok = system(lab_bin, "--file", LAB_FILE, "--state-dir", File.join(ROOT, ".lab"), "plan", "--provider", "hyperv", "--out", plan_dir)
    raise Calclab::Error, "calclab: #{lab_bin} plan --provider hyperv --out #{plan_dir} failed (make build first)" unless ok
    ps1 = File.join(plan_dir, "network.ps1")
    ui.detail("calclab: internal switch + NAT from #{ps1}")
    r = Vagrant::Util::PowerShell.execute(ps1)
    raise Calclab::Error, "calclab: #{ps1} failed: #{r.stderr}" if r.exit_code != 0
    @network_done = true
  end

  # PowerShell setting the Secure Boot template and attaching the seed ISO
  # of the VM with id vm_id (Vagrant's machine id is the Hyper-V VM id).
  def self.hyperv_vm_script(vm_id, seed)
    ps = <<~PS
      $ErrorActionPreference = 'Stop'
      $vm = Get-VM -Id '#{vm_id}'
      if ($vm.Generation -eq 2) {
        Set-VMFirmware -VM $vm -EnableSecureBoot On -SecureBootTemplate MicrosoftUEFICertificateAuthority
      }
    PS
    if seed
      ps += <<~PS
        $dvd = Get-VMDvdDrive -VM $vm | Select-Object -First 1
        if ($dvd) { Set-VMDvdDrive -VMDvdDrive $dvd -Path '#{seed.gsub("'", "''")}' }
        else { Add-VMDvdDrive -VM $vm -Path '#{seed.gsub("'", "''")}' }
      PS
    end
    ps
  end
end
