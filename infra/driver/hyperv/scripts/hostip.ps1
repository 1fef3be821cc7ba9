# The host's address on the switch's virtual NIC, "vEthernet (NAME)": the
# VMs' gateway, and how the host itself reaches them.
$alias = 'vEthernet ({0})' -f $SwitchName
$r.hostip = @{ alias = $alias; ip = $HostIP; created = $false }
$mine = Get-NetIPAddress -AddressFamily IPv4 -ErrorAction SilentlyContinue | Where-Object { $_.IPAddress -eq $HostIP }
if ($mine -and @($mine | Where-Object InterfaceAlias -ne $alias).Count -gt 0) {
  Stop-Step 'HostAddressTaken' ('The address ' + $HostIP + ' is already on ' + (@($mine)[0].InterfaceAlias))
}
if (-not $mine) {
  New-NetIPAddress -IPAddress $HostIP -PrefixLength $PrefixLength -InterfaceAlias $alias | Out-Null
  $r.hostip.created = $true
}
