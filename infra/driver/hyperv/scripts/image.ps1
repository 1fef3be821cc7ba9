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
