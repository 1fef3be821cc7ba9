# calclab down-network (netremove)
$NatName = 'calclab-nat'
$RemoveNat = $true
$HostIP = '192.168.56.1'
$RemoveHostIP = $true
$SwitchName = 'calclab-internal'
$RemoveSwitch = $true
$Files = @('D:\Hyper-V\calclab O''Brien\calclab\base-f1e85d0a.vhdx')
$Dir = 'D:\Hyper-V\calclab O''Brien\calclab'
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try { [Console]::OutputEncoding = [Text.Encoding]::UTF8 } catch { }
function Send-Result($Data) { 'CALCLAB-RESULT ' + (ConvertTo-Json -InputObject $Data -Compress -Depth 6) }
function Stop-Step([string]$Id, [string]$Message) {
  throw [Management.Automation.ErrorRecord]::new([Exception]::new($Message), $Id, 'InvalidOperation', $null)
}
trap {
  $e = $_
  'CALCLAB-ERROR ' + (ConvertTo-Json -Compress -InputObject @{
    id = [string]$e.FullyQualifiedErrorId; category = [string]$e.CategoryInfo.Category
    message = [string]$e.Exception.Message; type = $e.Exception.GetType().FullName })
  exit 1
}
$r = @{}
# Remove the NAT, the host address and the switch, each only when lab
# created it, then the lab's files on the host.
if ($RemoveNat) { Get-NetNat -ErrorAction SilentlyContinue | Where-Object Name -eq $NatName | Remove-NetNat -Confirm:$false }
if ($RemoveHostIP) { Get-NetIPAddress -AddressFamily IPv4 -ErrorAction SilentlyContinue | Where-Object { $_.IPAddress -eq $HostIP } | Remove-NetIPAddress -Confirm:$false }
if ($RemoveSwitch) { Get-VMSwitch | Where-Object Name -eq $SwitchName | Remove-VMSwitch -Force }
foreach ($f in $Files) { if (Test-Path -LiteralPath $f) { Remove-Item -LiteralPath $f -Force } }
if ((Test-Path -LiteralPath $Dir) -and -not (Get-ChildItem -LiteralPath $Dir -Force)) { Remove-Item -LiteralPath $Dir -Force }
$r.netremove = @{ nat = $RemoveNat; hostip = $RemoveHostIP; switch = $RemoveSwitch }
Send-Result $r
