# The variables `lab plan|up --engine terraform` writes from lab.yaml into
# terraform.tfvars.json (the token into its own 0600 token.auto.tfvars.json);
# infra/terraform/hyperv-taliesins takes the same file.

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

variable "token" {
  description = "Shared registration token of the services (empty: none). Written to its own 0600 tfvars file."
  type        = string
  default     = ""
  sensitive   = true
}
