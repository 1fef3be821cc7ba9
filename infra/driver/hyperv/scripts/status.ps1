# The lab's VMs as Hyper-V sees them.
$r.vms = @(Get-VM | Where-Object { $VMNames -contains $_.Name } | ForEach-Object {
  @{ name = $_.Name; state = [string]$_.State; notes = $_.Notes; uptime_s = [int]$_.Uptime.TotalSeconds }
})
