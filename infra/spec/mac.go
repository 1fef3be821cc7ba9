package spec

import (
	"crypto/sha256"
	"fmt"
	"strconv"
)

// OUIs (the first three bytes) of the MACs the providers give a node's NICs.
var (
	// QEMUOUI is QEMU's own prefix 52:54:00 (qemu provider, libvirt).
	QEMUOUI = [3]byte{0x52, 0x54, 0x00}
	// HyperVOUI is Microsoft's Hyper-V prefix 00:15:5D: Hyper-V accepts a
	// static MAC in it (Set-VMNetworkAdapter -StaticMacAddress).
	HyperVOUI = [3]byte{0x00, 0x15, 0x5d}
)

// NICMAC is the MAC of one NIC of a node: oui followed by the first three
// bytes of sha256(lab, node, nic, salt) (NUL-separated), so a node keeps its
// MAC, and with it the static address its network-config matches, across
// lab up/down and across machines. Lower case, colon-separated.
func NICMAC(oui [3]byte, lab, node, nic string, salt int) string {
	h := sha256.Sum256([]byte(lab + "\x00" + node + "\x00" + nic + "\x00" + strconv.Itoa(salt)))
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", oui[0], oui[1], oui[2], h[0], h[1], h[2])
}

// HyperVMAC is the MAC of a node's NIC on the lab's internal switch under
// Hyper-V (and in the Gen2 rehearsal on QEMU): 00:15:5d and the same three
// hashed bytes as the qemu provider's lan NIC.
func HyperVMAC(lab, node string) string { return NICMAC(HyperVOUI, lab, node, "lan", 0) }
