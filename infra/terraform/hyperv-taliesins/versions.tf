terraform {
  required_version = ">= 1.5.0"

  required_providers {
    hyperv = {
      source  = "taliesins/hyperv"
      version = "~> 1.2"
    }
  }
}

# WinRM to the Hyper-V host comes from the environment, as the provider reads
# it: HYPERV_HOST, HYPERV_PORT (5986), HYPERV_HTTPS, HYPERV_INSECURE,
# HYPERV_USE_NTLM, HYPERV_USERNAME, HYPERV_PASSWORD (or Kerberos:
# HYPERV_KERBEROS_REALM, ...). Nothing secret lives in this directory.
provider "hyperv" {}
