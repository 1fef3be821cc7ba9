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
