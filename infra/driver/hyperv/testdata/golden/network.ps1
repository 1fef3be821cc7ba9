# calclab network (network)
$SwitchName = 'calclab-internal'
$HostIP = '192.168.56.1'
$PrefixLength = 24
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
# Is this an elevated session on a host with Hyper-V running, new enough
# for the MicrosoftUEFICertificateAuthority Secure Boot template?
$principal = [Security.Principal.WindowsPrincipal]::new([Security.Principal.WindowsIdentity]::GetCurrent())
$admin = $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
$hvAdmin = $principal.IsInRole([Security.Principal.SecurityIdentifier]::new('S-1-5-32-578'))
$build = [Environment]::OSVersion.Version.Build
$r.preflight = @{ admin = $admin; hyperv_admin = $hvAdmin; build = $build; computer = $env:COMPUTERNAME }
if (-not (Get-Module -ListAvailable -Name Hyper-V)) {
  Stop-Step 'HyperVMissing' 'The Hyper-V PowerShell module is not installed on this host'
}
$vmms = Get-Service -Name vmms -ErrorAction SilentlyContinue
if (-not $vmms -or $vmms.Status -ne 'Running') {
  Stop-Step 'HyperVOff' 'The Hyper-V Virtual Machine Management service (vmms) is not running'
}
if (-not $admin) {
  Stop-Step 'NotElevated' 'This PowerShell session is not elevated (Run as Administrator)'
}
if ($build -lt 14393) {
  Stop-Step 'SecureBootTemplateUnknown' ('Windows build ' + $build + ' has no MicrosoftUEFICertificateAuthority Secure Boot template')
}
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
# The host's address on the switch's virtual NIC, "vEthernet (NAME)": the
# VMs' gateway, and how the host itself reaches them.
$alias = 'vEthernet ({0})' -f $SwitchName
$r.hostip = @{ alias = $alias; ip = $HostIP; created = $false }
$mine = Get-NetIPAddress -AddressFamily IPv4 -ErrorAction SilentlyContinue | Where-Object { $_.IPAddress -eq $HostIP }
if ($mine -and @($mine | Where-Object InterfaceAlias -ne $alias).Count -gt 0) {
  Stop-Step 'HostAddressTaken' ('The address ' + $HostIP + ' is already on ' + (@($mine)[0].InterfaceAlias))
}
if (-not $mine) {
  New-NetIPAddress -IPAddress $HostIP -PrefixLength $PrefixLength -InterfaceAlias $alias | Out-Null
  $r.hostip.created = $true
}
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
