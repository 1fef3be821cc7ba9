# calclab 12-publish (publish)
$NatName = 'calclab-nat'
$Ports = ('{"items":[{"node":"master","port":5000,"ip":"192.168.56.10","guest_port":5000,"rule":"calclab calclab master"},{"node":"slave-1","port":6001,"ip":"192.168.56.11","guest_port":6001,"rule":"calclab calclab slave-1"},{"node":"slave-2","port":6002,"ip":"192.168.56.12","guest_port":6001,"rule":"calclab calclab slave-2"}]}' | ConvertFrom-Json)
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
# Publish each node's service port on the host (NAT static mapping plus a
# firewall rule) so a client elsewhere reaches it: host:port -> ip:guest_port.
$r.publish = @{ mappings = @(); rules = @() }
$have = @(Get-NetNatStaticMapping -NatName $NatName -ErrorAction SilentlyContinue)
foreach ($m in $Ports.items) {
  $x = @($have | Where-Object { $_.ExternalPort -eq $m.port -and [string]$_.Protocol -eq 'TCP' })
  if ($x.Count -gt 0 -and ($x[0].InternalIPAddress -ne $m.ip -or $x[0].InternalPort -ne $m.guest_port)) {
    Stop-Step 'PortTaken' ('Port ' + $m.port + ' of the host is already mapped to ' + $x[0].InternalIPAddress + ':' + $x[0].InternalPort)
  }
  if ($x.Count -eq 0) {
    New-NetNatStaticMapping -NatName $NatName -Protocol TCP -ExternalIPAddress '0.0.0.0' -ExternalPort $m.port -InternalIPAddress $m.ip -InternalPort $m.guest_port | Out-Null
    $r.publish.mappings += $m.port
  }
  if (-not (Get-NetFirewallRule -Name $m.rule -ErrorAction SilentlyContinue)) {
    New-NetFirewallRule -Name $m.rule -DisplayName $m.rule -Direction Inbound -Protocol TCP -LocalPort $m.port -Action Allow | Out-Null
    $r.publish.rules += $m.rule
  }
}
Send-Result $r
