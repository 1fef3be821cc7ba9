# Shut the VM down (through its integration services), keeping its disks.
$vm = Get-VM | Where-Object Name -eq $VMName
$r.stop = @{ name = $VMName; stopped = $false }
if ($vm -and [string]$vm.State -ne 'Off') {
  Stop-VM -VM $vm -Force
  $r.stop.stopped = $true
}
