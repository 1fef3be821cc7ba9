# calclab's lab as Terraform resources of calclab's own provider
# (cmd/terraform-provider-calclab, over infra/resources): the network, one
# node per lab.yaml entry and the deployment of the services onto each.
# `lab up --engine terraform` writes this file and terraform.tfvars.json
# (from lab.yaml) into <state-dir>/terraform and runs init/plan/apply there.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    calclab = {
      # Installed from a local plugin directory, never from a registry.
      source = "calclab/calclab"
    }
  }
}

provider "calclab" {}

locals {
  # The binaries a deployment installs: bin/ for local processes, the
  # static linux/amd64 ones for VMs. Their hash in the plan makes a rebuilt
  # binary an in-place update of its deployments.
  bin_dir = var.lab.provider == "local" ? var.lab.bin_dir : "${var.lab.bin_dir}/linux-amd64"
  master  = one([for name, n in var.nodes : name if n.role == "master"])
  slaves  = { for name, n in var.nodes : name => n if n.role == "slave" }
}

resource "calclab_network" "lab" {
  lab       = var.lab.name
  driver    = var.lab.provider
  state_dir = var.lab.state_dir
  name      = var.network.name
  cidr      = var.network.cidr
  gateway   = var.network.gateway
  hyperv    = var.lab.hyperv
}

resource "calclab_node" "node" {
  for_each     = var.nodes
  lab          = var.lab.name
  driver       = var.lab.provider
  state_dir    = var.lab.state_dir
  lab_file     = var.lab.lab_file
  network      = calclab_network.lab.name
  cidr         = calclab_network.lab.cidr
  gateway      = calclab_network.lab.gateway
  ssh_user     = var.lab.ssh_user
  name         = each.key
  role         = each.value.role
  ip           = each.value.ip
  cpus         = each.value.cpus
  memory_mb    = each.value.memory_mb
  disk_gb      = each.value.disk_gb
  image        = each.value.image
  local_host   = var.lab.local_host
  local_port   = each.value.local_port
  service_port = each.value.role == "master" ? var.services.master_port : var.services.slave_port
  hyperv       = var.lab.hyperv
}

resource "calclab_deployment" "master" {
  lab         = var.lab.name
  driver      = var.lab.provider
  state_dir   = var.lab.state_dir
  bin_dir     = var.lab.bin_dir
  node        = calclab_node.node[local.master].name
  role        = "master"
  ip          = var.nodes[local.master].ip
  cidr        = var.network.cidr
  network     = var.network.name
  ssh_user    = var.lab.ssh_user
  local_host  = var.lab.local_host
  local_port  = var.nodes[local.master].local_port
  master_port = var.services.master_port
  slave_port  = var.services.slave_port
  policy      = var.services.policy
  token       = var.token
  binary_hash = "sha256:${filesha256("${local.bin_dir}/master")}"
  hyperv      = var.lab.hyperv
}

resource "calclab_deployment" "slave" {
  for_each          = local.slaves
  lab               = var.lab.name
  driver            = var.lab.provider
  state_dir         = var.lab.state_dir
  bin_dir           = var.lab.bin_dir
  node              = calclab_node.node[each.key].name
  role              = "slave"
  ip                = each.value.ip
  cidr              = var.network.cidr
  network           = var.network.name
  ssh_user          = var.lab.ssh_user
  local_host        = var.lab.local_host
  local_port        = each.value.local_port
  master_port       = var.services.master_port
  slave_port        = var.services.slave_port
  policy            = var.services.policy
  token             = var.token
  master_node       = calclab_deployment.master.node
  master_ip         = var.nodes[local.master].ip
  master_local_port = var.nodes[local.master].local_port
  binary_hash       = "sha256:${filesha256("${local.bin_dir}/slave")}"
  hyperv            = var.lab.hyperv
}
