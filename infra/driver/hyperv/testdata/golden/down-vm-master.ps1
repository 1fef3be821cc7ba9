# calclab down-vm-master (vmremove)
$VMName = 'calclab-master'
$Notes = 'calclab lab=calclab node=master'
$RemoveVM = $true
$Files = @('D:\Hyper-V\calclab O''Brien\calclab\master\disk.vhdx', 'D:\Hyper-V\calclab O''Brien\calclab\master\seed.iso')
$Dirs = @('D:\Hyper-V\calclab O''Brien\calclab\master')
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
# Turn off and remove the VM when lab created it ($RemoveVM; its Notes
# must say so), then the files and folders lab created for it.
$vm = Get-VM | Where-Object Name -eq $VMName
$r.vmremove = @{ name = $VMName; removed = $false }
if ($vm -and $RemoveVM) {
  if ($vm.Notes -ne $Notes) { Stop-Step 'VMNotOurs' ('The VM ''' + $VMName + ''' was not created by this lab; it is left alone') }
  if ([string]$vm.State -ne 'Off') { Stop-VM -VM $vm -TurnOff -Force }
  Remove-VM -VM $vm -Force
  $r.vmremove.removed = $true
}
foreach ($f in $Files) { if (Test-Path -LiteralPath $f) { Remove-Item -LiteralPath $f -Force } }
foreach ($d in $Dirs) { if (Test-Path -LiteralPath $d) { Remove-Item -LiteralPath $d -Recurse -Force } }
Send-Result $r
