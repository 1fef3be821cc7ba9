# One Gen2 VM: a differencing disk on the base, Secure Boot with the
# Microsoft UEFI CA template (Ubuntu's shim is signed by it), fixed CPU and
# memory, the static MAC the seed's network-config matches, the NoCloud
# seed on a DVD drive, booting from its disk. A VM of that name that lab
# did not make (its Notes differ) is refused, not touched.
New-Item -ItemType Directory -Force -Path $Dir | Out-Null
$vm = Get-VM | Where-Object Name -eq $VMName
$r.vm = @{ name = $VMName; created = $false; disk = $false }
if ($vm -and $vm.Notes -ne $Notes) {
  Stop-Step 'VMNameTaken' ('A VM named ''' + $VMName + ''' already exists and this lab did not create it')
}
if (-not (Test-Path -LiteralPath $DiskPath)) {
  New-VHD -Path $DiskPath -ParentPath $BaseVhdx -Differencing | Out-Null
  $r.vm.disk = $true
  if ($DiskBytes -gt (Get-VHD -Path $DiskPath).Size) { Resize-VHD -Path $DiskPath -SizeBytes $DiskBytes }
}
if (-not $vm) {
  $vm = New-VM -Name $VMName -Generation 2 -MemoryStartupBytes $MemoryBytes -VHDPath $DiskPath -SwitchName $SwitchName -Path $Dir
  Set-VM -VM $vm -Notes $Notes
  $r.vm.created = $true
}
if ([string]$vm.State -eq 'Off') {
  Set-VMProcessor -VM $vm -Count $CPUs
  Set-VMMemory -VM $vm -DynamicMemoryEnabled $false -StartupBytes $MemoryBytes
  Set-VMFirmware -VM $vm -EnableSecureBoot On -SecureBootTemplate MicrosoftUEFICertificateAuthority
  Get-VMNetworkAdapter -VM $vm | Select-Object -First 1 | Set-VMNetworkAdapter -StaticMacAddress $MAC
  $dvd = Get-VMDvdDrive -VM $vm | Select-Object -First 1
  if (-not $dvd) { Add-VMDvdDrive -VM $vm -Path $SeedIso } elseif ($dvd.Path -ne $SeedIso) { Set-VMDvdDrive -VMDvdDrive $dvd -Path $SeedIso }
  Set-VMFirmware -VM $vm -FirstBootDevice (Get-VMHardDiskDrive -VM $vm | Select-Object -First 1)
  if ((Get-Command Set-VM).Parameters.ContainsKey('AutomaticCheckpointsEnabled')) { Set-VM -VM $vm -AutomaticCheckpointsEnabled $false }
}
$r.vm.state = [string]$vm.State
