# calclab 02-switch (switch)
$SwitchName = 'calclab-internal'
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
Send-Result $r
