// Command terraform-provider-calclab is calclab's Terraform provider
// (infra/tfprovider). Terraform starts it; `lab --engine terraform`
// installs it from bin/ into a plugin directory, no registry involved.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/calclab/calclab/infra/terraform"
	"github.com/calclab/calclab/infra/tfprovider"
)

func main() {
	debug := flag.Bool("debug", false, "run for a debugger: print TF_REATTACH_PROVIDERS and wait")
	flag.Parse()
	err := providerserver.Serve(context.Background(), tfprovider.New(terraform.ProviderVersion), providerserver.ServeOpts{
		Address: tfprovider.Address,
		Debug:   *debug,
	})
	if err != nil {
		log.Fatal(err)
	}
}
