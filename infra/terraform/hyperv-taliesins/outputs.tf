# The same outputs as calclab's own configuration: `lab status` and `lab
# ssh` read them. The services are deployed afterwards over SSH
# (lab deploy --provider hyperv), so the URLs are where they will answer.
output "nodes" {
  description = "Per node: role, address, service URL, SSH host and port."
  value = {
    for name, n in var.nodes : name => {
      name     = hyperv_machine_instance.node[name].name
      role     = n.role
      address  = n.ip
      url      = "http://${n.ip}:${n.role == "master" ? var.services.master_port : var.services.slave_port}"
      ssh_host = n.ip
      ssh_port = 22
    }
  }
}

output "master_url" {
  description = "The master's URL on the internal switch."
  value       = one([for name, n in var.nodes : "http://${n.ip}:${var.services.master_port}" if n.role == "master"])
}
