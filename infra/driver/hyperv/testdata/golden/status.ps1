# calclab status (status)
$VMNames = @('calclab-master', 'calclab-slave-1', 'calclab-slave-2')
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
# The lab's VMs as Hyper-V sees them.
$r.vms = @(Get-VM | Where-Object { $VMNames -contains $_.Name } | ForEach-Object {
  @{ name = $_.Name; state = [string]$_.State; notes = $_.Notes; uptime_s = [int]$_.Uptime.TotalSeconds }
})
Send-Result $r
