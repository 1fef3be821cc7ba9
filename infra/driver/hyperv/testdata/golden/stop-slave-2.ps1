# calclab stop-slave-2 (stop)
$VMName = 'calclab-slave-2'
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
# Shut the VM down (through its integration services), keeping its disks.
$vm = Get-VM | Where-Object Name -eq $VMName
$r.stop = @{ name = $VMName; stopped = $false }
if ($vm -and [string]$vm.State -ne 'Off') {
  Stop-VM -VM $vm -Force
  $r.stop.stopped = $true
}
Send-Result $r
