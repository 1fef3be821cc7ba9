# Turn off and remove the VM when lab created it ($RemoveVM; its Notes
# must say so), then the files and folders lab created for it.
$vm = Get-VM | Where-Object Name -eq $VMName
$r.vmremove = @{ name = $VMName; removed = $false }
if ($vm -and $RemoveVM) {
  if ($vm.Notes -ne $Notes) { Stop-Step 'VMNotOurs' ('The VM ''' + $VMName + ''' was not created by this lab; it is left alone') }
  if ([string]$vm.State -ne 'Off') { Stop-VM -VM $vm -TurnOff -Force }
  Remove-VM -VM $vm -Force
  $r.vmremove.removed = $true
}
foreach ($f in $Files) { if (Test-Path -LiteralPath $f) { Remove-Item -LiteralPath $f -Force } }
foreach ($d in $Dirs) { if (Test-Path -LiteralPath $d) { Remove-Item -LiteralPath $d -Recurse -Force } }
