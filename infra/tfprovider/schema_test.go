package tfprovider

import (
	"context"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
)

// TestSchemaThroughTheFramework asks the provider for its schema over
// the plugin protocol, as Terraform does: the three resources of the
// model, their inputs required, the token sensitive, outputs computed.
func TestSchemaThroughTheFramework(t *testing.T) {
	server, err := providerserver.NewProtocol6WithError(New("test")())()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := server.GetProviderSchema(context.Background(), &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range resp.Diagnostics {
		t.Errorf("diagnostic: %s: %s", d.Summary, d.Detail)
	}
	attr := func(res, name string) *tfprotov6.SchemaAttribute {
		s, ok := resp.ResourceSchemas["calclab_"+res]
		if !ok {
			t.Fatalf("no resource calclab_%s; have %v", res, keys(resp.ResourceSchemas))
		}
		for _, a := range s.Block.Attributes {
			if a.Name == name {
				return a
			}
		}
		t.Fatalf("calclab_%s has no attribute %q", res, name)
		return nil
	}
	for _, tc := range []struct {
		res, attr                  string
		required, computed, secret bool
	}{
		{"network", "cidr", true, false, false},
		{"network", "id", false, true, false},
		{"node", "name", true, false, false},
		{"node", "ip", true, false, false},
		{"node", "address", false, true, false},
		{"node", "ssh_port", false, true, false},
		{"deployment", "token", false, false, true},
		{"deployment", "binary_hash", true, false, false},
		{"deployment", "url", false, true, false},
	} {
		a := attr(tc.res, tc.attr)
		if a.Required != tc.required || a.Computed != tc.computed || a.Sensitive != tc.secret {
			t.Errorf("calclab_%s.%s: required %v computed %v sensitive %v, want %v %v %v",
				tc.res, tc.attr, a.Required, a.Computed, a.Sensitive, tc.required, tc.computed, tc.secret)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
