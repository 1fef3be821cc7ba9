# calclab 03-hostip (hostip)
$SwitchName = 'calclab-internal'
$HostIP = '192.168.56.1'
$PrefixLength = 24
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
Send-Result $r
