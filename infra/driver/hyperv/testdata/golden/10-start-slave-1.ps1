# calclab 10-start-slave-1 (start)
$VMName = 'calclab-slave-1'
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
# Start the VM unless it runs.
$vm = Get-VM | Where-Object Name -eq $VMName
if (-not $vm) { Stop-Step 'VMMissing' ('There is no VM named ''' + $VMName + '''') }
$r.start = @{ name = $VMName; started = $false }
if ([string]$vm.State -ne 'Running') {
  Start-VM -VM $vm
  $r.start.started = $true
}
Send-Result $r
