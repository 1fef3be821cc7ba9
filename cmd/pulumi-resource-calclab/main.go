// Command pulumi-resource-calclab is calclab's Pulumi resource provider
// (infra/pulumiprovider). The Pulumi engine starts it; `lab --engine
// pulumi` points the stack's project at bin/, no plugin registry involved.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/calclab/calclab/infra/pulumiprovider"
)

func main() {
	// The engine passes its own flags and the address of its gRPC server
	// as arguments; Run reads them (a flag.Parse here would refuse them).
	if err := pulumiprovider.Run(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-calclab: %v\n", err)
		os.Exit(1)
	}
}
