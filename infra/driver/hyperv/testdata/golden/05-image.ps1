# calclab 05-image (image)
$Dir = 'D:\Hyper-V\calclab O''Brien\calclab'
$Source = 'D:\Hyper-V\calclab O''Brien\calclab\base-f1e85d0a.vhdx'
$BaseVhdx = 'D:\Hyper-V\calclab O''Brien\calclab\base-f1e85d0a.vhdx'
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
# The base disk every VM's differencing disk points at: a dynamic VHDX,
# its virtual size a whole number of MiB.
New-Item -ItemType Directory -Force -Path $Dir | Out-Null
$r.image = @{ path = $BaseVhdx; created = $false }
if (-not (Test-Path -LiteralPath $BaseVhdx)) {
  if (-not (Test-Path -LiteralPath $Source)) {
    Stop-Step 'ImageMissing' ('The image ' + $Source + ' does not exist')
  }
  switch ([IO.Path]::GetExtension($Source).ToLowerInvariant()) {
    '.vhdx' { Copy-Item -LiteralPath $Source -Destination $BaseVhdx }
    '.vhd' { Convert-VHD -Path $Source -DestinationPath $BaseVhdx -VHDType Dynamic }
    default { Stop-Step 'ImageNotVhdx' ('The image ' + $Source + ' is not a VHD or VHDX; convert it: qemu-img convert -O vhdx -o subformat=dynamic IMAGE ' + $BaseVhdx) }
  }
  $r.image.created = $true
}
$size = (Get-VHD -Path $BaseVhdx).Size
$mib = [uint64]1048576
$aligned = [uint64]([math]::Ceiling($size / $mib)) * $mib
if ($size -ne $aligned) { Resize-VHD -Path $BaseVhdx -SizeBytes $aligned }
$r.image.size = $aligned
Send-Result $r
