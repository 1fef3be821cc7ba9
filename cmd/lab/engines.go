package main

import (
	"io"

	"github.com/calclab/calclab/infra/engine"
	"github.com/calclab/calclab/infra/pulumi"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/infra/terraform"
)

// engineConfig is what every IaC engine is built from.
type engineConfig struct {
	spec     *spec.Lab
	stateDir string
	binDir   string
	out      io.Writer
}

// engines are the IaC engines --engine names besides "native" (the lab's
// own, infra/lab). Each goes through infra/resources.
var engines = map[string]func(engineConfig) engine.Engine{
	"terraform": func(c engineConfig) engine.Engine {
		return &terraform.Engine{Spec: c.spec, StateDir: c.stateDir, BinDir: c.binDir, Out: c.out}
	},
	"pulumi": func(c engineConfig) engine.Engine {
		return &pulumi.Engine{Spec: c.spec, StateDir: c.stateDir, BinDir: c.binDir, Out: c.out}
	},
}
