# Remove the NAT, the host address and the switch, each only when lab
# created it, then the lab's files on the host.
if ($RemoveNat) { Get-NetNat -ErrorAction SilentlyContinue | Where-Object Name -eq $NatName | Remove-NetNat -Confirm:$false }
if ($RemoveHostIP) { Get-NetIPAddress -AddressFamily IPv4 -ErrorAction SilentlyContinue | Where-Object { $_.IPAddress -eq $HostIP } | Remove-NetIPAddress -Confirm:$false }
if ($RemoveSwitch) { Get-VMSwitch | Where-Object Name -eq $SwitchName | Remove-VMSwitch -Force }
foreach ($f in $Files) { if (Test-Path -LiteralPath $f) { Remove-Item -LiteralPath $f -Force } }
if ((Test-Path -LiteralPath $Dir) -and -not (Get-ChildItem -LiteralPath $Dir -Force)) { Remove-Item -LiteralPath $Dir -Force }
$r.netremove = @{ nat = $RemoveNat; hostip = $RemoveHostIP; switch = $RemoveSwitch }
