# What `lab status` and `lab ssh` read (infra/terraform.Outputs).
output "nodes" {
  description = "Per node: role, address, service URL, SSH host and port."
  value = {
    for name, n in calclab_node.node : name => {
      name     = n.name
      role     = n.role
      address  = n.address
      url      = name == local.master ? calclab_deployment.master.url : calclab_deployment.slave[name].url
      ssh_host = n.ssh_host
      ssh_port = n.ssh_port
    }
  }
}

output "master_url" {
  description = "The master's URL."
  value       = calclab_deployment.master.url
}
