# calclab down-unpublish (unpublish)
$NatName = 'calclab-nat'
$Ports = ('{"mappings":[5000],"rules":["calclab calclab master"]}' | ConvertFrom-Json)
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
# Remove the port mappings and firewall rules lab added, and only those.
foreach ($port in $Ports.mappings) {
  Get-NetNatStaticMapping -NatName $NatName -ErrorAction SilentlyContinue | Where-Object { $_.ExternalPort -eq $port } | Remove-NetNatStaticMapping -Confirm:$false
}
foreach ($rule in $Ports.rules) {
  Get-NetFirewallRule -Name $rule -ErrorAction SilentlyContinue | Remove-NetFirewallRule
}
$r.unpublish = @{ done = $true }
Send-Result $r
