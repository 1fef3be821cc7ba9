// Package vagrant holds the Ruby the root Vagrantfile loads (lab.rb: the
// spec and what it derives; hyperv.rb: the Hyper-V preparation hook) and
// the tests that hold that Ruby to the Go side: the same MACs as the
// drivers, byte-identical env files and systemd units as provision/deploy,
// and scripts/vagrant-check.rb refusing a broken Vagrantfile.
package vagrant
