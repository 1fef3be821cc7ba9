# calclab 04-nat (nat)
$NatName = 'calclab-nat'
$CIDR = '192.168.56.0/24'
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
# Outbound NAT for the switch's network. A host has one NAT network on most
# Windows builds: reuse one that covers the lab's network, refuse one that
# overlaps it (or any other, when New-NetNat then fails), naming it.
function Get-Range([string]$Prefix) {
  $addr, $len = $Prefix.Split('/')
  $b = ([Net.IPAddress]::Parse($addr)).GetAddressBytes()
  [Array]::Reverse($b)
  $size = [uint64]1 -shl (32 - [int]$len)
  $start = [uint64]([BitConverter]::ToUInt32($b, 0)) - ([uint64]([BitConverter]::ToUInt32($b, 0)) % $size)
  @($start, ($start + $size - 1))
}
$want = Get-Range $CIDR
$r.nat = @{ name = $NatName; created = $false; reused = $false }
$others = @()
foreach ($n in @(Get-NetNat -ErrorAction SilentlyContinue)) {
  $p = [string]$n.InternalIPInterfaceAddressPrefix
  if (-not $p -or $r.nat.reused) { continue }
  $have = Get-Range $p
  if ($have[0] -le $want[0] -and $have[1] -ge $want[1]) {
    $r.nat.name = $n.Name
    $r.nat.reused = $true
  } elseif (($have[0] -le $want[1] -and $want[0] -le $have[1]) -or $n.Name -eq $NatName) {
    Stop-Step 'NatConflict' ('The NAT network ''' + $n.Name + ''' (' + $p + ') overlaps ' + $CIDR + ' without covering it')
  } else {
    $others += ($n.Name + ' (' + $p + ')')
  }
}
if (-not $r.nat.reused) {
  try {
    New-NetNat -Name $NatName -InternalIPInterfaceAddressPrefix $CIDR | Out-Null
  } catch {
    if ($others.Count -gt 0) {
      Stop-Step 'NatConflict' ('New-NetNat failed (' + $_.Exception.Message + '); this host already has the NAT network ' + ($others -join ', '))
    }
    throw
  }
  $r.nat.created = $true
}
Send-Result $r
