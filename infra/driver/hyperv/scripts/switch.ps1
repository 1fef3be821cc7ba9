# The lab's internal switch: reuse an Internal switch of that name, refuse
# a switch of another type, else create it.
$sw = Get-VMSwitch | Where-Object Name -eq $SwitchName
$r.switch = @{ name = $SwitchName; created = $false }
if ($sw) {
  if ([string]$sw.SwitchType -ne 'Internal') {
    Stop-Step 'SwitchNameTaken' ('A ' + $sw.SwitchType + ' switch named ''' + $SwitchName + ''' already exists')
  }
} else {
  New-VMSwitch -Name $SwitchName -SwitchType Internal | Out-Null
  $r.switch.created = $true
}
