locals {
  prefix = split("/", var.network.cidr)[1]
}

# The lab's internal switch. The host's address on it and the NAT are not
# resources of this provider: network.ps1 (below) adds them.
resource "hyperv_network_switch" "lab" {
  name                = var.network.name
  notes               = "calclab lab ${var.lab.name}: internal switch ${var.network.cidr}"
  switch_type         = "Internal"
  allow_management_os = true
}

resource "terraform_data" "nat" {
  count            = var.network_script == "" ? 0 : 1
  triggers_replace = [hyperv_network_switch.lab.name, var.network.cidr, var.network.gateway]

  provisioner "local-exec" {
    interpreter = ["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File"]
    command     = var.network_script
  }
}

# One differencing disk per node on the shared base image.
resource "hyperv_vhd" "node" {
  for_each    = var.nodes
  path        = "${var.vm_dir}/${var.lab.name}-${each.key}.vhdx"
  parent_path = var.vhd_source
}

resource "hyperv_machine_instance" "node" {
  for_each             = var.nodes
  name                 = "${var.lab.name}-${each.key}"
  notes                = "calclab lab ${var.lab.name}: ${each.value.role} ${each.value.ip}/${local.prefix}"
  generation           = 2
  processor_count      = each.value.cpus
  static_memory        = true
  dynamic_memory       = false
  memory_startup_bytes = each.value.memory_mb * 1024 * 1024
  checkpoint_type      = "Disabled"
  state                = "Running"

  # Linux boots under the UEFI CA template, not Hyper-V's default
  # MicrosoftWindows one.
  vm_firmware {
    enable_secure_boot   = "On"
    secure_boot_template = "MicrosoftUEFICertificateAuthority"
    boot_order {
      boot_type           = "HardDiskDrive"
      controller_number   = 0
      controller_location = 0
    }
  }

  integration_services = {
    "Guest Service Interface" = true
    "Heartbeat"               = true
    "Key-Value Pair Exchange" = true
    "Shutdown"                = true
    "Time Synchronization"    = true
    "VSS"                     = true
  }

  # The MAC the hyperv driver pins: the seed's network-config matches it,
  # so the node has its static address at first boot.
  network_adaptors {
    name                = "lan"
    switch_name         = hyperv_network_switch.lab.name
    dynamic_mac_address = false
    static_mac_address  = each.value.hyperv_mac
  }

  hard_disk_drives {
    controller_type     = "Scsi"
    controller_number   = 0
    controller_location = 0
    path                = hyperv_vhd.node[each.key].path
  }

  # The NoCloud seed: static IP, login user and SSH key.
  dvd_drives {
    controller_number   = 0
    controller_location = 1
    path                = "${var.seed_dir}/${each.key}/seed.iso"
  }

  depends_on = [terraform_data.nat]
}
