# Validates every machine of the root Vagrantfile for the Hyper-V provider
# with Vagrant's own classes, on a machine without Hyper-V: `vagrant
# validate` checks only the default provider's block, so this loads each
# machine's config as `vagrant up --provider hyperv` would
# (Vagrantfile#machine_config), builds the Vagrant::Machine, runs every
# config section's validate (vm, provisioners, triggers, the Hyper-V
# provider config) and then checks what calclab relies on: the pinned MAC,
# the switch named by bridge:, the Secure Boot hook, synced folders off.
#
#   ruby scripts/vagrant-check.rb [DIR]     (make vagrant-check)
require "vagrant"
require "tmpdir"

dir = File.expand_path(ARGV[0] || File.join(__dir__, ".."))
env = Vagrant::Environment.new(cwd: dir, ui_class: Vagrant::UI::Silent)
provider = :hyperv
cls, opts = Vagrant.plugin("2").manager.providers[provider]
abort "vagrant-check: Vagrant has no #{provider} provider" unless cls

lab = Calclab::Lab.load(Calclab::LAB_FILE)
failed = false
Dir.mktmpdir("vagrant-check") do |tmp|
  env.machine_names.each do |name|
    problems = []
    r = env.vagrantfile.machine_config(name, provider, env.boxes, nil, false)
    config = r[:config]
    problems.concat(r[:config_errors].map(&:to_s)) if r[:config_errors]
    pc = config.vm.get_provider_config(provider)
    data = File.join(tmp, name.to_s)
    FileUtils.mkdir_p(data)
    machine = Vagrant::Machine.new(name, provider, cls, pc, opts, config, Pathname.new(data), nil, env, env.vagrantfile)
    config.validate(machine).each do |section, errs|
      errs.each { |e| problems << "#{section}: #{e}" }
    end

    node = lab.nodes.find { |n| n["name"] == name.to_s }
    if node.nil?
      problems << "machine #{name} is not a node of #{Calclab::LAB_FILE}"
    else
      want_mac = lab.hyperv_mac(name.to_s)
      problems << "hv.mac is #{pc.mac.inspect}, want #{want_mac}" unless pc.mac == want_mac
      problems << "hv.cpus is #{pc.cpus.inspect}, want #{node["cpus"]}" unless pc.cpus == node["cpus"]
      problems << "hv.memory is #{pc.memory.inspect}, want #{node["memory_mb"]}" unless pc.memory == node["memory_mb"]
      bridges = config.vm.networks.select { |t, _| t == :public_network }.map { |_, o| o[:bridge] }
      problems << "no public_network with bridge: #{lab.network.inspect} (Vagrant would ask for a switch)" unless bridges == [lab.network]
    end
    if pc.vm_integration_services[:key_value_pair_exchange] != true
      problems << "key_value_pair_exchange integration service is off: Vagrant could not read the guest's IP"
    end
    live = config.vm.synced_folders.reject { |_, o| o[:disabled] }
    problems << "synced folders enabled (SMB prompts): #{live.keys.join(", ")}" unless live.empty?
    hooks = Vagrant.plugin("2").manager.find_action_hooks("VagrantPlugins::HyperV::Action::StartInstance")
    problems << "no hook before Hyper-V's StartInstance (Secure Boot template, switch, seed)" if hooks.empty?

    if problems.empty?
      printf("%-12s hyperv ok   mac %s  switch %s  %d cpu  %d MiB  ip %s\n", name, pc.mac, lab.network, pc.cpus, pc.memory, node["ip"])
    else
      failed = true
      puts "#{name}: hyperv settings are not valid:"
      problems.each { |p| puts "  - #{p}" }
    end
  end
end
exit(failed ? 1 : 0)
