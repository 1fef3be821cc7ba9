# Start the VM unless it runs.
$vm = Get-VM | Where-Object Name -eq $VMName
if (-not $vm) { Stop-Step 'VMMissing' ('There is no VM named ''' + $VMName + '''') }
$r.start = @{ name = $VMName; started = $false }
if ([string]$vm.State -ne 'Running') {
  Start-VM -VM $vm
  $r.start.started = $true
}
