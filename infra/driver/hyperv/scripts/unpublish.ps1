# Remove the port mappings and firewall rules lab added, and only those.
foreach ($port in $Ports.mappings) {
  Get-NetNatStaticMapping -NatName $NatName -ErrorAction SilentlyContinue | Where-Object { $_.ExternalPort -eq $port } | Remove-NetNatStaticMapping -Confirm:$false
}
foreach ($rule in $Ports.rules) {
  Get-NetFirewallRule -Name $rule -ErrorAction SilentlyContinue | Remove-NetFirewallRule
}
$r.unpublish = @{ done = $true }
