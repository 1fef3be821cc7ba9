# The same variables as calclab's own Terraform configuration (the tfvars
# JSON that `lab plan|up --engine terraform` writes from lab.yaml), plus the
# few this provider needs (at the end, all with defaults). The token is not
# among them: it is only needed by the deploy over SSH afterwards.

variable "lab" {
  description = "The lab: name, provider, state dir (absolute), bin dir, SSH login user, loopback host (local provider)."
  type = object({
    name       = string
    provider   = string
    state_dir  = string
    bin_dir    = string
    lab_file   = string
    ssh_user   = string
    local_host = string
    hyperv     = string
  })
}

variable "network" {
  description = "The internal switch: name, IPv4 CIDR and the gateway (the host's address on it, the NAT)."
  type = object({
    name    = string
    cidr    = string
    gateway = string
  })
}

variable "services" {
  description = "Ports and balancing policy of the calclab services."
  type = object({
    master_port = number
    slave_port  = number
    policy      = string
  })
}

variable "nodes" {
  description = "One entry per lab.yaml node, keyed by name; hyperv_mac is the MAC the hyperv driver pins (00155Dxxxxxx)."
  type = map(object({
    role       = string
    ip         = string
    cpus       = number
    memory_mb  = number
    disk_gb    = number
    image      = string
    local_port = number
    hyperv_mac = string
  }))
}

variable "vhd_source" {
  description = "Base VHDX every node's disk is a differencing child of (our Debian image, converted: qemu-img convert -O vhdx)."
  type        = string
  default     = "C:/ProgramData/calclab/images/debian-12.vhdx"
}

variable "vm_dir" {
  description = "Directory on the Hyper-V host for the nodes' disks."
  type        = string
  default     = "C:/ProgramData/calclab/vms"
}

variable "seed_dir" {
  description = "Directory on the Hyper-V host holding <node>/seed.iso, the NoCloud seeds `lab plan --provider hyperv --out DIR` writes (static IP matched by MAC, SSH key)."
  type        = string
  default     = "C:/ProgramData/calclab/seeds"
}

variable "network_script" {
  description = "Path of network.ps1 from `lab plan --provider hyperv --out DIR` (the host vNIC address and the NAT, which this provider does not manage); empty: skip. Runs where terraform runs, so only when that is the Hyper-V host."
  type        = string
  default     = ""
}
